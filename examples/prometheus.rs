//! Serves `/metrics` in the Prometheus text format on localhost while the checkout scenario
//! runs, and scrapes it once per phase, printing the breaker's state and the call counters so
//! the numbers can be watched moving through the outage and the recovery.
//!
//! ```sh
//! cargo run --example prometheus
//! ```
//!
//! The port is picked by the OS and printed; `curl` it from another shell while the example
//! runs to see the whole exposition.

// The scenario lives in a shared file so this example runs the very same one as `checkout`.
#[path = "support/scenario.rs"]
mod scenario;

use std::error::Error;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use resilient::registry;
use scenario::{SCHEDULE, Scenario};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long each phase lasts: shorter than `checkout`'s 3 s so the run ends in about ten
/// seconds, yet long enough that the breaker has closed again before the last scrape (it
/// backs off to a 2 s open wait during the outage and the slow phase).
const PHASE: Duration = Duration::from_millis(2_500);

/// The metrics whose samples each scrape prints; the rest is there for `curl`.
const SHOWN: [&str; 3] = [
    "resilient_breaker_state",
    "resilient_calls_total",
    "resilient_call_site_calls_total",
];

/// The largest request head the responder reads; a scrape's is a few dozen bytes.
const MAX_HEAD: usize = 8 * 1024;

/// How long a connection may take to send its request head, so a client that connects and
/// says nothing does not hold a task for the rest of the run.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    // Port 0: the OS picks a free one, so the example never collides with a running service.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    println!("prometheus: serving http://{address}/metrics while the scenario runs\n");
    // The server task ends with the runtime when `main` returns.
    tokio::spawn(serve(listener, handle));

    let scenario = Scenario::start(PHASE)?;
    let mut summary = Vec::new();
    for phase in &SCHEDULE {
        summary.push(scenario.run_phase(phase).await);
        let body = scrape(address).await?;
        scenario.log(format_args!(
            "scrape after `{}`: GET /metrics → 200 OK, {} bytes",
            phase.name,
            body.len()
        ));
        for line in shown(&body) {
            println!("              {line}");
        }
    }
    scenario::print_summary(&summary);
    Ok(())
}

/// The samples of the [`SHOWN`] metrics in `body`, grouped in [`SHOWN`]'s order and sorted
/// within each metric: the exporter renders series in hash order, which would shuffle the
/// lines from one scrape to the next and hide how the numbers move.
fn shown(body: &str) -> Vec<&str> {
    let mut lines: Vec<(usize, &str)> = body
        .lines()
        .filter_map(|line| {
            // The exact name followed by labels or the value: no `# HELP` or `# TYPE` lines,
            // and no metric whose name merely starts with a shown one.
            let metric = SHOWN.iter().position(|name| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })?;
            Some((metric, line))
        })
        .collect();
    lines.sort_unstable();
    lines.into_iter().map(|(_, line)| line).collect()
}

/// Accepts connections until the runtime shuts down, answering each on its own task.
async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let handle = handle.clone();
                tokio::spawn(async move {
                    if let Err(error) = respond(stream, &handle).await {
                        eprintln!("prometheus: connection failed: {error}");
                    }
                });
            }
            Err(error) => {
                // Accept errors (out of file descriptors, a connection reset while queued)
                // are usually transient; pause so a persistent one does not spin a core.
                eprintln!("prometheus: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request and answers it: the exposition for `GET /metrics`, 405 for other
/// methods on it, 404 for any other path. One response per connection, then it closes, which
/// is all a scraper needs and spares the responder keep-alive bookkeeping.
async fn respond(mut stream: TcpStream, handle: &PrometheusHandle) -> io::Result<()> {
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request head in time"))??;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next());
    // A scraper may add query parameters; the path alone picks the resource.
    let path = target.map(|target| target.split('?').next().unwrap_or_default());
    let response = match (method, path) {
        ("GET", Some("/metrics")) => {
            // Copy the registry's current counters into the recorder, so the scrape is fresh.
            registry().export_metrics();
            response("200 OK", "", EXPOSITION, &handle.render())
        }
        (_, Some("/metrics")) => response(
            "405 Method Not Allowed",
            // A 405 must say which methods the resource does allow.
            "Allow: GET\r\n",
            "text/plain",
            "GET only\n",
        ),
        (_, Some(_)) => response("404 Not Found", "", "text/plain", "try /metrics\n"),
        (_, None) => response(
            "400 Bad Request",
            "",
            "text/plain",
            "malformed request line\n",
        ),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends an HTTP/1.1 request head. A scrape has no body, so
/// nothing after it matters.
async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the request head",
            ));
        }
        head.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8(head).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// A complete response that tells the client the connection closes after it; `headers` are
/// extra header lines, each ending in CRLF.
fn response(status: &str, headers: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Scrapes `http://{address}/metrics` as Prometheus would and returns the body.
async fn scrape(address: SocketAddr) -> Result<String, Box<dyn Error>> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    // The server closes the connection after its response, which marks the body's end.
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("the response has no blank line after its head")?;
    let status = head.lines().next().unwrap_or_default();
    if status != "HTTP/1.1 200 OK" {
        return Err(format!("the scrape was answered `{status}`").into());
    }
    Ok(body.to_owned())
}
