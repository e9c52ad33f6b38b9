create table if not exists "readings" (
  "sensor" text not null primary key,
  "kind" text not null check ("kind" in ('TEMP', 'HUMIDITY')),
  "value" double precision not null,
  "samples" bigint not null,
  "taken_on" date not null,
  "taken_at" timestamptz(6) not null,
  "location" jsonb,
  "ok" boolean not null default true,
  "created_at" timestamptz not null default now(),
  "updated_at" timestamptz not null default now()
);
