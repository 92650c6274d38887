-- Studios, their API keys, contacts and shoots. Every studio-data table carries studio_id.
CREATE TABLE studios (
    studio_id            text PRIMARY KEY,
    name                 text NOT NULL,
    timezone             text NOT NULL,
    country              text NOT NULL,
    currency             text NOT NULL,
    auto_create_contacts boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    studio_id   text NOT NULL REFERENCES studios (studio_id),
    key_prefix  text NOT NULL UNIQUE,
    key_hash    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_studio ON api_keys (studio_id);

CREATE TABLE contacts (
    studio_id         text NOT NULL REFERENCES studios (studio_id),
    contact_id        text NOT NULL,
    first_name        text,
    last_name         text,
    full_name         text,
    email             text,
    email_norm        text,
    phone             text,
    phone_e164        text,
    postcode          text,
    created_by_import boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (studio_id, contact_id)
);
CREATE INDEX contacts_email ON contacts (studio_id, email_norm);
CREATE INDEX contacts_phone ON contacts (studio_id, phone_e164);

CREATE TABLE shoots (
    studio_id      text NOT NULL REFERENCES studios (studio_id),
    shoot_id       text NOT NULL,
    contact_id     text,
    title          text,
    shoot_date     date,
    status         text NOT NULL CHECK (status IN ('confirmed', 'provisional', 'cancelled')),
    gallery_source text,
    gallery_ref    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (studio_id, shoot_id)
);
CREATE INDEX shoots_gallery ON shoots (studio_id, gallery_source, gallery_ref);
CREATE INDEX shoots_contact ON shoots (studio_id, contact_id);
