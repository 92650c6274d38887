-- Linked gallery accounts (ShootProof brands, Pic-Time accounts), what their pollers remember,
-- and the OAuth `state` values of links in progress. Tokens are never stored in clear: the *_enc
-- columns hold AES-256-GCM ciphertexts made by connectors/secrets.py (key: GALLERYFLOW_SECRET_KEY).
CREATE TABLE connector_accounts (
    studio_id          text NOT NULL REFERENCES studios (studio_id),
    source             text NOT NULL CHECK (source IN ('shootproof', 'pictime')),
    account_id         text NOT NULL,                -- ShootProof brand id; Pic-Time account id
    access_token_enc   text NOT NULL,
    refresh_token_enc  text,
    token_expires_at   timestamptz,                  -- NULL: unknown, refreshed on a 401 only
    token_refreshed_at timestamptz,
    cursor             text,                         -- Pic-Time `since` cursor
    state              jsonb NOT NULL DEFAULT '{}'::jsonb,  -- poller state, e.g. {"backfill_done": true}
    enabled            boolean NOT NULL DEFAULT true,
    linked_at          timestamptz NOT NULL DEFAULT now(),
    last_poll_at       timestamptz,
    last_success_at    timestamptz,
    next_poll_at       timestamptz,                  -- NULL: due now
    last_error         text,                         -- ids and status codes only, never personal data
    orders_published   bigint NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (studio_id, source, account_id)
);

-- One row per order a poller has handed to Kafka: a later poll publishes the order again only when
-- its content hash changed. A row is written only after the broker acknowledged the publish.
-- summary_hash is the hash of the order without its items (lets a poller skip the items request).
CREATE TABLE connector_order_hashes (
    studio_id          text NOT NULL REFERENCES studios (studio_id),
    source             text NOT NULL,
    external_order_id  text NOT NULL,
    content_hash       text NOT NULL,
    summary_hash       text,
    seen_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (studio_id, source, external_order_id)
);

-- OAuth `state` values handed out by `galleryflow link ... --authorize-url`, kept as SHA-256 hashes
-- until used once or expired.
CREATE TABLE oauth_states (
    state_hash    text PRIMARY KEY,
    studio_id     text NOT NULL REFERENCES studios (studio_id),
    source        text NOT NULL,
    redirect_uri  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
