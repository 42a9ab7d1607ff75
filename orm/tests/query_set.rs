//! Query sets against a real PostgreSQL: every read and write operation on real rows, `get`
//! with none and with several, `select_related` through a foreign key, aggregates, and values
//! that look like SQL staying data.

mod common;

use common::{run, Cluster};
use pinion_orm::query::raw;
use pinion_orm::{batch, Model};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qs_product")]
struct Product {
    #[model(primary_key, auto)]
    id: i32,
    name: String,
    #[model(column = "price_cents")]
    price: i32,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qs_order")]
struct Order {
    #[model(primary_key, auto)]
    id: i64,
    #[model(foreign_key = Product)]
    product_id: i32,
    quantity: i32,
}

const SCHEMA: &str = "
    DROP TABLE IF EXISTS qs_order, qs_product;
    CREATE TABLE qs_product (id serial PRIMARY KEY, name text NOT NULL, price_cents int4 NOT NULL, note text);
    CREATE TABLE qs_order (id bigserial PRIMARY KEY, product_id int4 NOT NULL REFERENCES qs_product (id), quantity int4 NOT NULL);
";

fn product(name: &str, price: i32, note: Option<&str>) -> Product {
    Product {
        id: 0,
        name: name.to_string(),
        price,
        note: note.map(str::to_string),
    }
}

fn names(products: &[Product]) -> Vec<&str> {
    products.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn every_query_set_operation_on_real_rows() {
    let cluster = Cluster::shared();
    run(async {
        let db = common::primary_only(&cluster.primary);
        db.primary().batch_execute(SCHEMA).await.expect("schema");

        // bulk_create: one statement, keys assigned in order.
        let mut products = vec![
            product("green tea", 450, None),
            product("black tea", 390, Some("strong")),
            product("coffee", 520, Some("50% arabica")),
            product("it's; DROP TABLE qs_product; --", 100, Some("100%_sure")),
        ];
        let inserted = Product::objects()
            .bulk_create(&mut products, &*db)
            .await
            .expect("bulk_create");
        assert_eq!(inserted, 4);
        let ids: Vec<i32> = products.iter().map(|p| p.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > 0, "{ids:?}");

        let all = Product::objects()
            .order_by(Product::ID.asc())
            .all(&*db)
            .await
            .expect("all");
        assert_eq!(all, products);

        // Comparisons.
        let q = |e| Product::objects().filter(e).order_by(Product::PRICE.asc());
        assert_eq!(
            names(&q(Product::PRICE.eq(450)).all(&*db).await.unwrap()),
            ["green tea"]
        );
        assert_eq!(
            names(&q(Product::PRICE.ne(450)).all(&*db).await.unwrap()).len(),
            3
        );
        assert_eq!(
            names(&q(Product::PRICE.lt(450)).all(&*db).await.unwrap()),
            [products[3].name.as_str(), "black tea"]
        );
        assert_eq!(
            names(&q(Product::PRICE.le(450)).all(&*db).await.unwrap()).len(),
            3
        );
        assert_eq!(
            names(&q(Product::PRICE.gt(450)).all(&*db).await.unwrap()),
            ["coffee"]
        );
        assert_eq!(
            names(&q(Product::PRICE.ge(450)).all(&*db).await.unwrap()),
            ["green tea", "coffee"]
        );
        assert_eq!(
            names(
                &q(Product::ID.is_in([ids[0], ids[2], 999_999]))
                    .all(&*db)
                    .await
                    .unwrap()
            ),
            ["green tea", "coffee"]
        );
        assert!(q(Product::ID.is_in(Vec::<i32>::new()))
            .all(&*db)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            names(&q(Product::NOTE.is_null()).all(&*db).await.unwrap()),
            ["green tea"]
        );
        assert_eq!(
            q(Product::NOTE.is_not_null())
                .all(&*db)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            names(&q(Product::NAME.like("%tea")).all(&*db).await.unwrap()),
            ["black tea", "green tea"]
        );
        assert_eq!(
            names(&q(Product::NAME.ilike("%TEA")).all(&*db).await.unwrap()),
            ["black tea", "green tea"]
        );
        assert!(q(Product::NAME.like("%TEA"))
            .all(&*db)
            .await
            .unwrap()
            .is_empty());
        // `%` and `_` in a contains() search are the characters themselves.
        assert_eq!(
            names(&q(Product::NOTE.contains("50%")).all(&*db).await.unwrap()),
            ["coffee"]
        );
        assert_eq!(
            q(Product::NOTE.contains("0_s"))
                .all(&*db)
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            q(Product::NOTE.contains("0%_s"))
                .all(&*db)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            names(&q(Product::NAME.icontains("TEA")).all(&*db).await.unwrap()),
            ["black tea", "green tea"]
        );
        assert_eq!(
            names(&q(Product::NAME.starts_with("co")).all(&*db).await.unwrap()),
            ["coffee"]
        );

        // and / or / not, and exclude.
        let cheap_tea = Product::NAME.contains("tea") & Product::PRICE.lt(400);
        assert_eq!(names(&q(cheap_tea).all(&*db).await.unwrap()), ["black tea"]);
        let either = Product::PRICE.eq(100) | Product::PRICE.eq(520);
        assert_eq!(q(either.clone()).all(&*db).await.unwrap().len(), 2);
        assert_eq!(q(!either.clone()).all(&*db).await.unwrap().len(), 2);
        let nested =
            (Product::PRICE.eq(100) | Product::PRICE.eq(520)) & Product::NOTE.contains("%");
        assert_eq!(q(nested).all(&*db).await.unwrap().len(), 2);
        assert_eq!(
            names(
                &Product::objects()
                    .exclude(either)
                    .order_by(Product::NAME.desc())
                    .all(&*db)
                    .await
                    .unwrap()
            ),
            ["green tea", "black tea"]
        );

        // Values that look like SQL stay data.
        let evil = Product::objects()
            .filter(Product::NAME.eq(products[3].name.clone()))
            .get(&*db)
            .await
            .expect("the quoted name is data");
        assert_eq!(evil, products[3]);
        assert_eq!(
            Product::objects().count(&*db).await.unwrap(),
            4,
            "nothing was dropped"
        );
        assert!(Product::objects()
            .filter(Product::NAME.eq("' OR '1'='1"))
            .all(&*db)
            .await
            .unwrap()
            .is_empty());

        // Order, limit, offset, first.
        let by_price = Product::objects()
            .order_by(Product::PRICE.desc())
            .limit(2)
            .offset(1);
        assert_eq!(
            names(&by_price.all(&*db).await.unwrap()),
            ["green tea", "black tea"]
        );
        assert_eq!(by_price.count(&*db).await.unwrap(), 2);
        let first = Product::objects()
            .first(&*db)
            .await
            .unwrap()
            .expect("a row");
        assert_eq!(first.id, ids[0], "first() orders by the primary key");
        assert!(Product::objects()
            .filter(Product::PRICE.gt(10_000))
            .first(&*db)
            .await
            .unwrap()
            .is_none());
        // The slice is kept: the first of the query set's rows, not of the table's.
        let second = by_price.first(&*db).await.unwrap().expect("a row");
        assert_eq!(second.name, "green tea", "offset 1 of the price order");
        assert!(Product::objects()
            .limit(0)
            .first(&*db)
            .await
            .unwrap()
            .is_none());

        // get: one, none, several.
        let one = Product::objects()
            .filter(Product::ID.eq(ids[1]))
            .get(&*db)
            .await
            .unwrap();
        assert_eq!(one.name, "black tea");
        let none = Product::objects()
            .filter(Product::ID.eq(-1))
            .get(&*db)
            .await
            .unwrap_err();
        assert!(none.is_no_row(), "{none}");
        let several = Product::objects()
            .filter(Product::NAME.contains("tea"))
            .get(&*db)
            .await
            .unwrap_err();
        assert!(
            several.is_multiple_rows() && !several.is_no_row(),
            "{several}"
        );

        // count, exists, aggregates.
        let tea = Product::objects().filter(Product::NAME.contains("tea"));
        assert_eq!(tea.count(&*db).await.unwrap(), 2);
        assert!(tea.exists(&*db).await.unwrap());
        assert!(!Product::objects()
            .filter(Product::PRICE.lt(0))
            .exists(&*db)
            .await
            .unwrap());
        assert_eq!(tea.sum(Product::PRICE, &*db).await.unwrap(), Some(840));
        assert_eq!(tea.avg(Product::PRICE, &*db).await.unwrap(), Some(420.0));
        assert_eq!(tea.min(Product::PRICE, &*db).await.unwrap(), Some(390));
        assert_eq!(
            tea.max(Product::NAME, &*db).await.unwrap(),
            Some("green tea".to_string())
        );
        let nothing = Product::objects().filter(Product::PRICE.lt(0));
        assert_eq!(nothing.sum(Product::PRICE, &*db).await.unwrap(), None);
        assert_eq!(nothing.max(Product::PRICE, &*db).await.unwrap(), None);

        // Selected columns only.
        let prices: Vec<i32> = Product::objects()
            .order_by(Product::PRICE.asc())
            .values(Product::PRICE)
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(prices, [100, 390, 450, 520]);
        let pairs: Vec<(String, Option<String>)> = tea
            .clone()
            .order_by(Product::NAME.asc())
            .values((Product::NAME, Product::NOTE))
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(
            pairs,
            [
                ("black tea".into(), Some("strong".into())),
                ("green tea".into(), None)
            ]
        );

        // select_related: one JOIN.
        let mut orders = vec![
            Order {
                id: 0,
                product_id: ids[0],
                quantity: 2,
            },
            Order {
                id: 0,
                product_id: ids[2],
                quantity: 1,
            },
            Order {
                id: 0,
                product_id: ids[0],
                quantity: 5,
            },
        ];
        Order::objects()
            .bulk_create(&mut orders, &*db)
            .await
            .unwrap();
        let joined = Order::objects()
            .filter(Order::QUANTITY.gt(1))
            .order_by(Order::QUANTITY.asc())
            .select_related::<Product>()
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(joined.len(), 2);
        assert!(joined
            .iter()
            .all(|(o, p)| o.product_id == p.id && p.name == "green tea"));
        let coffee_orders = Order::objects()
            .select_related::<Product>()
            .filter_related(Product::NAME.eq("coffee"))
            .get(&*db)
            .await
            .unwrap();
        assert_eq!((coffee_orders.0.quantity, coffee_orders.1.price), (1, 520));

        // save: update in place, insert with a new key, created flag.
        let mut p = products[0].clone();
        p.price = 470;
        assert!(!p.save(&*db).await.unwrap().created);
        let mut fresh = product("oolong", 610, None);
        assert!(fresh.save(&*db).await.unwrap().created);
        assert!(fresh.id > ids[3]);
        let stored = Product::objects()
            .filter(Product::ID.eq(p.id))
            .get(&*db)
            .await
            .unwrap();
        assert_eq!(stored.price, 470);

        // Query-set update and delete, one statement each.
        let changed = Product::objects()
            .filter(Product::NAME.contains("tea"))
            .update([Product::NOTE.set(Some("tea; --".to_string()))], &*db)
            .await
            .unwrap();
        assert_eq!(changed, 2);
        assert_eq!(
            Product::objects()
                .filter(Product::NOTE.eq(Some("tea; --".to_string())))
                .count(&*db)
                .await
                .unwrap(),
            2
        );
        let sliced = Product::objects()
            .limit(1)
            .update([Product::PRICE.set(1)], &*db)
            .await
            .unwrap_err();
        assert!(sliced.to_string().contains("sliced"), "{sliced}");

        // bulk_update: one statement.
        let mut two = Product::objects()
            .filter(Product::ID.is_in([ids[1], ids[2]]))
            .order_by(Product::ID.asc())
            .all(&*db)
            .await
            .unwrap();
        two[0].price = 1;
        two[1].price = 2;
        two[1].name = "not written".into();
        let n = Product::objects()
            .bulk_update(&two, &[&Product::PRICE], &*db)
            .await
            .unwrap();
        assert_eq!(n, 2);
        let now: Vec<(String, i32)> = Product::objects()
            .filter(Product::ID.is_in([ids[1], ids[2]]))
            .order_by(Product::ID.asc())
            .values((Product::NAME, Product::PRICE))
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(now, [("black tea".into(), 1), ("coffee".into(), 2)]);

        // Batches: same SQL, one Sync.
        let got = batch(
            ids.iter()
                .map(|&id| Product::objects().filter(Product::ID.eq(id))),
        )
        .get(&*db)
        .await
        .unwrap();
        assert_eq!(got.iter().map(|p| p.id).collect::<Vec<_>>(), ids);
        let firsts = batch([
            Product::objects().filter(Product::ID.eq(ids[0])),
            Product::objects().filter(Product::PRICE.lt(0)),
            Product::objects().filter(Product::NAME.eq("oolong")),
        ])
        .first(&*db)
        .await
        .unwrap();
        assert_eq!(
            firsts
                .iter()
                .map(|p| p.as_ref().map(|p| p.name.as_str()))
                .collect::<Vec<_>>(),
            [Some("green tea"), None, Some("oolong")]
        );

        // Instance delete, query-set delete.
        assert!(orders[1].delete(&*db).await.unwrap());
        assert!(!orders[1].delete(&*db).await.unwrap(), "already gone");
        let gone = Order::objects()
            .filter(Order::PRODUCT_ID.eq(ids[0]))
            .delete(&*db)
            .await
            .unwrap();
        assert_eq!(gone, 2);
        assert_eq!(Order::objects().count(&*db).await.unwrap(), 0);

        // Raw SQL declares its tables; values stay bound.
        let top: Vec<(String, i32)> = raw("SELECT name, price_cents FROM qs_product WHERE name <> $1 ORDER BY price_cents DESC LIMIT $2")
            .bind("coffee")
            .bind(2i64)
            .reads("qs_product")
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(top.len(), 2);
        let undeclared = raw("SELECT 1").all::<(i32,)>(&*db).await.unwrap_err();
        assert!(undeclared.to_string().contains("declare"), "{undeclared}");
        let n = raw("DELETE FROM qs_product WHERE name = $1")
            .bind("oolong")
            .writes("qs_product")
            .execute(&*db)
            .await
            .unwrap();
        assert_eq!(n, 1);
    });
}
