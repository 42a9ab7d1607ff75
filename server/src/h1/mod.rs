//! HTTP/1.1: parsing request heads, framing and decoding bodies, encoding responses.

pub(crate) mod body;
pub(crate) mod chunked;
pub(crate) mod date;
pub(crate) mod encode;
pub(crate) mod extensions;
pub(crate) mod framing;
pub(crate) mod head;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod spans;
pub(crate) mod token;

pub use extensions::Extensions;
pub use request::Request;
pub use response::Response;
