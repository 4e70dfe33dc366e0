-- The shop database of the order pipeline example (MariaDB / MySQL).
-- run.sh drops and recreates it on every run.
DROP DATABASE IF EXISTS shop;
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;

CREATE TABLE orders (
    id         BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer   VARCHAR(100)  NOT NULL,
    status     VARCHAR(20)   NOT NULL DEFAULT 'new',
    total      DECIMAL(10,2) NOT NULL,
    created_at DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

-- No ON DELETE CASCADE: rows removed by a cascade are not written to the binlog, so CDC would
-- never see them. Delete an order's items first, then the order.
CREATE TABLE order_items (
    id       BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id BIGINT        NOT NULL,
    sku      VARCHAR(40)   NOT NULL,
    qty      INT           NOT NULL,
    price    DECIMAL(10,2) NOT NULL,
    KEY order_items_order (order_id),
    CONSTRAINT order_items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id)
);
