//! `Router::layer`: code around the handlers routed before it, with extensions for the
//! handler and the power to answer in its place.

use pinion_server::extract::{FromRequest, Rejection};
use pinion_server::testing::{block_on, TestClient};
use pinion_server::{
    Ctx, HandlerFuture, HeaderName, HeaderValue, Layer, Next, Request, Response, Router, StatusCode,
};

/// What the layer attaches for the handler.
#[derive(Clone)]
struct Visitor(String);

impl<S> FromRequest<S> for Visitor {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> Result<Visitor, Rejection> {
        req.extensions()
            .get::<Visitor>()
            .cloned()
            .ok_or_else(|| Rejection::new(StatusCode::INTERNAL_SERVER_ERROR, "no visitor layer"))
    }
}

/// Attaches a visitor named by `?name=`, refuses `?name=mallory`, and marks every answer.
struct Greeter {
    mark: &'static str,
}

impl Layer<()> for Greeter {
    fn call<'a>(
        &'a self,
        mut req: Request,
        ctx: &'a Ctx<()>,
        next: Next<'a, ()>,
    ) -> HandlerFuture<'a> {
        Box::pin(async move {
            let name = req.query_param("name").map(|n| n.into_owned());
            if name.as_deref() == Some("mallory") {
                return Ok(Response::new(StatusCode::FORBIDDEN));
            }
            if let Some(name) = name {
                req.extensions_mut().insert(Visitor(name));
            }
            let mut resp = next.run(req, ctx).await?;
            resp.insert_header(
                HeaderName::from_static("x-layer"),
                HeaderValue::from_static(self.mark),
            );
            Ok(resp)
        })
    }
}

async fn hello(Visitor(name): Visitor) -> String {
    format!("hello {name}")
}

async fn plain() -> &'static str {
    "plain"
}

#[test]
fn a_layer_wraps_the_routes_before_it_and_not_those_after() {
    block_on(async {
        let router = Router::new()
            .get("/hello", hello)
            .layer(Greeter { mark: "inner" })
            .layer(Greeter { mark: "outer" })
            .get("/plain", plain);
        let client = TestClient::new(&pinion_config::Settings::default(), router, ());

        let resp = client.get("/hello?name=ada").send().await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.text(), "hello ada");
        // The inner layer marks first, the outer one after it.
        assert_eq!(resp.header_all("x-layer"), ["inner", "outer"]);

        let refused = client.get("/hello?name=mallory").send().await;
        assert_eq!(
            refused.status(),
            StatusCode::FORBIDDEN,
            "the layer answers instead"
        );
        assert_eq!(
            refused.header_all("x-layer"),
            Vec::<&str>::new(),
            "the outer layer's early answer"
        );

        let missing = client.get("/hello").send().await;
        assert_eq!(
            missing.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "no extension, the extractor refuses"
        );

        let plain = client.get("/plain?name=mallory").send().await;
        assert_eq!(
            plain.status(),
            StatusCode::OK,
            "routed after the layers: not wrapped"
        );
        assert_eq!(plain.header("x-layer"), None);
    });
}
