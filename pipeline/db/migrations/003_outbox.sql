-- Committed-sale events are written in the sale's transaction and published after the commit,
-- so a crash between the commit and the publish never loses an event (transactional outbox).
CREATE TABLE sale_events_outbox (
    id          bigserial PRIMARY KEY,
    studio_id   text NOT NULL,
    event_key   text NOT NULL,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
