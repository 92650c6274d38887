-- What became of dead letters: `galleryflow dlq replay` marks the ones it re-published ('replayed'),
-- and the importer marks a replayed order 'resolved' in the same transaction that writes it.
-- A replay that fails again is a new dead letter whose replay_of names the old one (on the topic).
CREATE TABLE dead_letter_resolutions (
    dead_letter_id  text PRIMARY KEY,
    status          text NOT NULL CHECK (status IN ('replayed', 'resolved')),
    stage           text,
    replay_count    integer NOT NULL DEFAULT 0,
    replayed_at     timestamptz,
    resolved_at     timestamptz,
    resolved_by     text
);
