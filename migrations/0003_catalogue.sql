-- The demo app: accounts, a catalogue of products, and orders of them.

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    -- argon2id in the PHC string format (pinion_web::password).
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- One account per address, whatever its case.
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE products (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    description text NOT NULL DEFAULT '',
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    stock integer NOT NULL CHECK (stock >= 0),
    created_by bigint REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX products_name ON products (lower(name));

CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    total_cents integer NOT NULL CHECK (total_cents >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user ON orders (user_id, id DESC);

CREATE TABLE order_lines (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id integer NOT NULL REFERENCES products (id),
    quantity integer NOT NULL CHECK (quantity > 0),
    price_cents integer NOT NULL CHECK (price_cents >= 0)
);
CREATE INDEX order_lines_order ON order_lines (order_id);

INSERT INTO products (name, description, price_cents, stock) VALUES
    ('Brass pinion, 12 teeth', 'Module 0.5, for clock trains.', 450, 40),
    ('Brass pinion, 16 teeth', 'Module 0.5, for clock trains.', 520, 35),
    ('Steel pinion, 10 teeth', 'Hardened, module 0.4.', 890, 12),
    ('Escape wheel, 30 teeth', 'Brass, for a deadbeat escapement.', 1450, 8),
    ('Mainspring, 2.0 mm', 'Carbon steel, 35 cm.', 1290, 20),
    ('Pivot file', 'Double-sided, fine and burnishing.', 1990, 5),
    ('Jewel bearing, 1.2 mm', 'Synthetic ruby, press fit.', 310, 200),
    ('Hairspring collet', 'Brass, 0.8 mm bore.', 270, 60),
    ('Clock oil, 5 ml', 'Synthetic, for pivots.', 990, 25),
    ('Crown wheel, 24 teeth', 'Brass, module 0.3.', 760, 15),
    ('Ratchet wheel', 'Steel, with click and spring.', 680, 18),
    ('Balance staff', 'For 13 ligne movements.', 1150, 9),
    ('Pallet fork', 'Steel, with ruby pallets.', 2350, 4),
    ('Dial feet, pair', 'Brass, 1.0 mm.', 190, 80),
    ('Hand set, Breguet', 'Blued steel, hour and minute.', 1690, 7);
