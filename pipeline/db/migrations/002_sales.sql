-- Sales, their items, and the inbox of orders that need a person.
CREATE TABLE sales (
    id                 bigserial PRIMARY KEY,
    studio_id          text NOT NULL REFERENCES studios (studio_id),
    source             text NOT NULL,
    external_order_id  text NOT NULL,
    order_number       text,
    contact_id         text NOT NULL,
    shoot_id           text,
    placed_at          timestamptz NOT NULL,
    order_date         date NOT NULL,
    status             text NOT NULL
        CHECK (status IN ('paid', 'pending_payment', 'partially_refunded', 'refunded', 'cancelled')),
    currency           char(3) NOT NULL,
    subtotal           numeric,
    shipping           numeric,
    discount           numeric,
    tax                numeric,
    total              numeric NOT NULL,
    refunded           numeric NOT NULL DEFAULT 0,
    payout             numeric,
    payment_collector  text,
    gallery_ref        text,
    gallery_name       text,
    version_time       timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    content_hash       text NOT NULL,
    decision           jsonb NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (studio_id, source, external_order_id),
    FOREIGN KEY (studio_id, contact_id) REFERENCES contacts (studio_id, contact_id)
);
CREATE INDEX sales_contact ON sales (studio_id, contact_id);
CREATE INDEX sales_date ON sales (studio_id, order_date);

CREATE TABLE sale_items (
    sale_id      bigint NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
    studio_id    text NOT NULL,
    position     integer NOT NULL,
    description  text NOT NULL,
    quantity     integer NOT NULL,
    unit_price   numeric,
    line_total   numeric,
    kind         text NOT NULL,
    PRIMARY KEY (sale_id, position)
);
CREATE INDEX sale_items_studio ON sale_items (studio_id);

CREATE TABLE inbox (
    id                 bigserial PRIMARY KEY,
    studio_id          text NOT NULL REFERENCES studios (studio_id),
    source             text NOT NULL,
    external_order_id  text NOT NULL,
    reason             text NOT NULL CHECK (reason IN ('ambiguous_contact', 'no_contact_match')),
    candidates         jsonb NOT NULL,
    decision           jsonb NOT NULL,
    canonical_order    jsonb NOT NULL,
    version_time       timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    content_hash       text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (studio_id, source, external_order_id)
);
