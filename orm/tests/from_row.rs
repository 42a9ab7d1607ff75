//! `#[derive(FromRow)]` against a real PostgreSQL: one struct decodes from a query's rows and
//! from a batch's rows; a row of the wrong shape is refused with an error that says why.

mod common;

use common::{run, Cluster};
use pinion_orm::tokio_postgres::types::{ToSql, Type};
use pinion_orm::{ConnectionManager, FromRow, PipelineStatement};

#[derive(Debug, PartialEq, FromRow)]
struct Item {
    id: i32,
    name: String,
    note: Option<String>,
}

#[derive(Debug, PartialEq, FromRow)]
struct Pair(i64, bool);

const SELECT: &str = "SELECT g, 'item ' || g, CASE WHEN g % 2 = 0 THEN 'even' END \
                      FROM generate_series(1, $1) g ORDER BY g";

fn db(url: &str) -> std::rc::Rc<ConnectionManager> {
    common::primary_only(url)
}

fn expected(n: i32) -> Vec<Item> {
    (1..=n)
        .map(|g| Item {
            id: g,
            name: format!("item {g}"),
            note: (g % 2 == 0).then(|| "even".to_string()),
        })
        .collect()
}

#[test]
fn one_struct_decodes_from_both_row_types() {
    let cluster = Cluster::shared();
    run(async {
        let db = db(&cluster.primary);
        let primary = db.primary();
        let rows = primary.query(SELECT, &[&3]).await.expect("query");
        assert_eq!(Item::from_rows(&rows).expect("decoded"), expected(3));

        let batch = PipelineStatement::new(SELECT, &[Type::INT4]);
        let counts = [2, 0, 4];
        let results = primary
            .query_pipelined(&batch, counts.iter().map(|n| [n as &(dyn ToSql + Sync)]))
            .await
            .expect("batch");
        let decoded: Vec<Vec<Item>> = results
            .iter()
            .map(|rows| Item::from_rows(rows).expect("decoded"))
            .collect();
        assert_eq!(decoded, [expected(2), expected(0), expected(4)]);

        let row = primary
            .query_one("SELECT 7::int8, true", &[])
            .await
            .expect("query");
        assert_eq!(Pair::from_row(&row).expect("tuple struct"), Pair(7, true));
    });
}

#[test]
fn a_row_of_the_wrong_shape_is_refused_with_the_reason() {
    let cluster = Cluster::shared();
    run(async {
        let db = db(&cluster.primary);
        let primary = db.primary();
        let short = primary
            .query_one("SELECT 1::int4, 'a'", &[])
            .await
            .expect("query");
        let e = Item::from_row(&short).expect_err("two columns for three fields");
        assert!(e.is_query(), "{e}");
        assert!(
            e.to_string()
                .contains("Item decodes 3 columns, the row has 2"),
            "{e}"
        );
        // A column of another type names its position.
        let wrong = primary
            .query_one("SELECT 'one'::text, 'a'::text, NULL::text", &[])
            .await
            .expect("query");
        let e = Item::from_row(&wrong).expect_err("text into i32");
        assert!(e.to_string().contains("column 0"), "{e}");
        // A NULL into a field that is not an Option.
        let batch = PipelineStatement::new("SELECT 1::int4, NULL::text, NULL::text", &[]);
        let results = primary
            .query_pipelined(&batch, std::iter::once([] as [&(dyn ToSql + Sync); 0]))
            .await
            .expect("batch");
        let e = Item::from_row(&results[0][0]).expect_err("NULL name");
        assert!(e.to_string().contains("column 1"), "{e}");
    });
}
