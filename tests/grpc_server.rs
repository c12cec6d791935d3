//! gRPC over a real connection: an in-process tonic server whose handler calls its dependency
//! through `#[resilient]`, and a tonic client on the loopback interface. What `resilient`
//! refuses on the server reaches the client as `UNAVAILABLE` with its pushback, and a client
//! whose calls are annotated retries after it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut};
use resilient::{BreakerConfig, registry, resilient};
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::channel::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Code, Request, Response, Status};

/// Messages as UTF-8 text: a codec without protobuf.
#[derive(Debug, Clone, Copy, Default)]
struct Text;

impl Codec for Text {
    type Encode = String;
    type Decode = String;
    type Encoder = Text;
    type Decoder = Text;

    fn encoder(&mut self) -> Text {
        Text
    }

    fn decoder(&mut self) -> Text {
        Text
    }
}

impl Encoder for Text {
    type Item = String;
    type Error = Status;

    fn encode(&mut self, item: String, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}

impl Decoder for Text {
    type Item = String;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<String>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| Status::invalid_argument("not UTF-8"))
    }
}

const BALANCE: &str = "/ledger.Ledger/Balance";

/// The ledger's database, behind the breaker `grpc_server_ledger_db`.
#[resilient(breaker = "grpc_server_ledger_db")]
async fn balance_from_db(account: String) -> Result<String, Status> {
    Ok(format!("{account}: 42"))
}

/// Answers `UNAVAILABLE` with a 1 ms pushback this many times, then serves.
static PUSH_BACK_FIRST: AtomicU32 = AtomicU32::new(0);
static SERVED: AtomicU32 = AtomicU32::new(0);

struct BalanceHandler;

impl UnaryService<String> for BalanceHandler {
    type Response = String;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Status>> + Send>>;

    fn call(&mut self, request: Request<String>) -> Self::Future {
        Box::pin(async move {
            SERVED.fetch_add(1, Ordering::Relaxed);
            let pushed_back = PUSH_BACK_FIRST
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            if pushed_back {
                let mut busy = Status::unavailable("busy");
                busy.metadata_mut()
                    .insert(resilient::grpc::RETRY_PUSHBACK, "1".parse().unwrap());
                return Err(busy);
            }
            balance_from_db(request.into_inner())
                .await
                .map(Response::new)
        })
    }
}

/// The whole server: one unary method.
#[derive(Debug, Clone)]
struct Ledger;

impl NamedService for Ledger {
    const NAME: &'static str = "ledger.Ledger";
}

impl tower_service::Service<http::Request<Body>> for Ledger {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != BALANCE {
                return Ok(Status::unimplemented(request.uri().path().to_owned()).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(Text);
            Ok(grpc.unary(BalanceHandler, request).await)
        })
    }
}

async fn serve() -> Channel {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = incoming.local_addr().unwrap();
    tokio::spawn(Server::builder().serve_with_incoming(Ledger, incoming));
    Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn ask(channel: &Channel, account: &str) -> Result<String, Status> {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client
        .ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(BALANCE);
    let response = client
        .unary(Request::new(account.to_owned()), path, Text)
        .await?;
    Ok(response.into_inner())
}

/// The client side, annotated: retries what the server pushes back.
#[resilient(retries = 2, backoff = "1ms")]
async fn ask_with_retries(channel: &Channel, account: &str) -> Result<String, Status> {
    ask(channel, account).await
}

// One test: the server's breaker lives in the process-wide registry, which a second test running
// at the same time would share.
#[tokio::test]
async fn rejections_cross_the_wire_and_the_client_retries_after_the_pushback() {
    let channel = serve().await;
    assert_eq!(ask(&channel, "alice").await.unwrap(), "alice: 42");

    let breaker = registry()
        .declare_breaker(
            "grpc_server_ledger_db",
            BreakerConfig::consecutive_failures(1).with_open_wait(Duration::from_secs(30)),
        )
        .unwrap();
    breaker.try_acquire().unwrap().record_failure();
    let refused = ask(&channel, "alice").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let pushback: u64 = refused
        .metadata()
        .get(resilient::grpc::RETRY_PUSHBACK)
        .expect("the pushback crosses the wire")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((20_000..=30_000).contains(&pushback), "{pushback}");
    assert_eq!(
        refused.metadata().get(resilient::grpc::DEPENDENCY).unwrap(),
        "grpc_server_ledger_db"
    );
    breaker.reset();

    PUSH_BACK_FIRST.store(2, Ordering::Relaxed);
    SERVED.store(0, Ordering::Relaxed);
    let answer = ask_with_retries(&channel, "bob").await.unwrap();
    assert_eq!(answer, "bob: 42");
    assert_eq!(
        SERVED.load(Ordering::Relaxed),
        3,
        "pushed back twice, then served"
    );
}
