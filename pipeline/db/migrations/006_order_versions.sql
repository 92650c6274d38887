-- Which versions of an order were applied: a late re-delivery of an older version (a webhook retry,
-- a replay) is recognised by its content hash and never overwrites a newer one, even for sources
-- that send no update time.
ALTER TABLE sales ADD COLUMN source_updated_at timestamptz;
ALTER TABLE sales ADD COLUMN seen_hashes text[] NOT NULL DEFAULT '{}';
UPDATE sales SET seen_hashes = ARRAY[content_hash];
ALTER TABLE inbox ADD COLUMN source_updated_at timestamptz;
ALTER TABLE inbox ADD COLUMN seen_hashes text[] NOT NULL DEFAULT '{}';
UPDATE inbox SET seen_hashes = ARRAY[content_hash];
