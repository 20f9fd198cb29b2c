//! The stats service: a Rust HTTP server on the standard library only, for pitstop's proxy
//! mode. It knows nothing of pitstop: it binds $HOST:$PORT like any twelve-factor app.
//! pitstop gives each version a private port and forwards the public address to the one
//! that serves; at a swap the requests in flight on the old version finish before it gets
//! SIGTERM, so it needs no signal handling of its own.
//!
//! Change VERSION and save: `cargo build` runs while this version keeps answering.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const VERSION: &str = "v1";

fn handle(stream: TcpStream, started: Instant, served: u64) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Read the rest of the head; this server answers GETs, whose bodies it ignores.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/health" => ("200 OK", "ok\n".to_string()),
        "/" => (
            "200 OK",
            format!(
                "stats {VERSION}: {served} requests in {:.1}s\n",
                started.elapsed().as_secs_f64()
            ),
        ),
        _ => ("404 Not Found", format!("no route {path}\n")),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn main() {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_string());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8002".to_string());
    let listener = TcpListener::bind(format!("{host}:{port}")).unwrap_or_else(|err| {
        eprintln!("stats: cannot bind {host}:{port}: {err}");
        std::process::exit(1);
    });
    println!("stats {VERSION} listening on {host}:{port}");
    let started = Instant::now();
    for (served, stream) in listener.incoming().enumerate() {
        match stream {
            Ok(stream) => {
                if let Err(err) = handle(stream, started, served as u64 + 1) {
                    eprintln!("stats: {err}");
                }
            }
            Err(err) => eprintln!("stats: accept: {err}"),
        }
    }
}
