//! A static file server over plain tokio (HTTP/1.1, no framework) that
//! sends file bodies with [`pipepool::tokio::sendfile`]: the pages go from
//! the page cache to the socket without passing through user space, and no
//! thread blocks on a slow client. `Range: bytes=...` requests get
//! `206 Partial Content` (one range; a multi-range request gets the whole
//! file, as RFC 9110 allows), keep-alive and `HEAD` work.
//!
//! ```sh
//! cargo run -p pipepool --example static_files --features tokio -- [ROOT] [LISTEN]
//! curl -r 0-99 http://127.0.0.1:8081/Cargo.toml
//! ```
//!
//! Defaults: serve the current directory on 127.0.0.1:8081. Paths with a
//! `..` component are refused; this is an example, not a hardened server.

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let listener = TcpListener::bind(&listen).await?;
    println!(
        "serving {} on http://{}",
        root.display(),
        listener.local_addr()?
    );
    serve(listener, Arc::new(root)).await
}

/// Accepts connections forever, one task each.
async fn serve(listener: TcpListener, root: Arc<PathBuf>) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let root = Arc::clone(&root);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &root).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// Answers the requests of one connection until it closes.
async fn connection(stream: TcpStream, root: &Path) -> io::Result<()> {
    let mut conn = BufReader::new(stream);
    while let Some(request) = read_request(&mut conn).await? {
        respond(&mut conn, root, &request).await?;
        if request.close {
            break;
        }
    }
    Ok(())
}

/// What the server needs from a request head.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    range: Option<String>,
    /// `Connection: close`, or HTTP/1.0.
    close: bool,
}

/// Reads one request head; `None` at a clean end of the connection.
async fn read_request(conn: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        range: None,
        close: version == "HTTP/1.0",
    };
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 || line.len() > 8192 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated request head",
            ));
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(Some(request));
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("range") {
                request.range = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("connection") {
                request.close = value.eq_ignore_ascii_case("close");
            }
        }
    }
}

/// Writes the response: the head, then the body with `sendfile`.
async fn respond(conn: &mut BufReader<TcpStream>, root: &Path, req: &Request) -> io::Result<()> {
    let head_only = req.method == "HEAD";
    if !head_only && req.method != "GET" {
        return simple(conn, "405 Method Not Allowed").await;
    }
    let Some(file) = open(root, &req.path) else {
        return simple(conn, "404 Not Found").await;
    };
    let size = file.metadata()?.len();
    let (status, start, len, content_range) = match req
        .range
        .as_deref()
        .map(|r| parse_range(r, size))
    {
        Some(Range::Satisfiable(start, end)) => (
            "206 Partial Content",
            start,
            end - start + 1,
            format!("Content-Range: bytes {start}-{end}/{size}\r\n"),
        ),
        Some(Range::Unsatisfiable) => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\n\r\n"
            );
            return conn.get_mut().write_all(head.as_bytes()).await;
        }
        Some(Range::Ignored) | None => ("200 OK", 0, size, String::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\n{content_range}Content-Type: application/octet-stream\r\n\r\n"
    );
    conn.get_mut().write_all(head.as_bytes()).await?;
    if head_only {
        return Ok(());
    }
    // The body: file pages straight to the socket.
    let sent = pipepool::tokio::sendfile(&file, conn.get_ref(), start, len).await?;
    if sent.bytes < len {
        // The file shrank under us: the response cannot be completed.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank while sent",
        ));
    }
    Ok(())
}

async fn simple(conn: &mut BufReader<TcpStream>, status: &str) -> io::Result<()> {
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
    conn.get_mut().write_all(head.as_bytes()).await
}

/// The regular file at `path` under `root`, if any (no `..` allowed).
fn open(root: &Path, path: &str) -> Option<File> {
    let relative = Path::new(path.split('?').next()?.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let file = File::open(root.join(relative)).ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

/// A `Range` header against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// First and last byte, inclusive.
    Satisfiable(u64, u64),
    /// `416`: no byte of the file is in the range.
    Unsatisfiable,
    /// Not one `bytes` range this server understands: send the whole file.
    Ignored,
}

/// Parses `bytes=START-END`, `bytes=START-` and `bytes=-SUFFIX`.
fn parse_range(header: &str, size: u64) -> Range {
    let Some(spec) = header.strip_prefix("bytes=") else {
        return Range::Ignored;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Ignored;
    };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-SUFFIX: the last SUFFIX bytes.
        (true, _, Some(suffix)) if suffix > 0 && size > 0 => {
            Range::Satisfiable(size.saturating_sub(suffix), size - 1)
        }
        (true, _, Some(_)) => Range::Unsatisfiable,
        (false, Some(start), _) if start >= size => Range::Unsatisfiable,
        (false, Some(start), None) if last.trim().is_empty() => Range::Satisfiable(start, size - 1),
        (false, Some(start), Some(end)) if end >= start => {
            Range::Satisfiable(start, end.min(size - 1))
        }
        _ => Range::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::AsyncReadExt;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Range::Satisfiable(0, 99));
        assert_eq!(
            parse_range("bytes=990-", 1000),
            Range::Satisfiable(990, 999)
        );
        assert_eq!(parse_range("bytes=-10", 1000), Range::Satisfiable(990, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), Range::Satisfiable(0, 999));
        assert_eq!(
            parse_range("bytes=500-5000", 1000),
            Range::Satisfiable(500, 999)
        );
        assert_eq!(parse_range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), Range::Ignored);
        assert_eq!(parse_range("bytes=0-1,5-9", 1000), Range::Ignored);
        assert_eq!(parse_range("items=0-1", 1000), Range::Ignored);
    }

    /// Sends `request` on a fresh connection and reads until the server
    /// closes it (each request says `Connection: close`).
    async fn fetch(addr: std::net::SocketAddr, request: &str) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    }

    fn split(response: &[u8]) -> (String, &[u8]) {
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        (
            String::from_utf8_lossy(&response[..end]).into_owned(),
            &response[end..],
        )
    }

    #[tokio::test]
    async fn serves_files_and_ranges() {
        let root = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        File::create(root.path().join("blob"))
            .unwrap()
            .write_all(&data)
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::new(root.path().to_owned())));

        let whole = fetch(addr, "GET /blob HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        let (head, body) = split(&whole);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(body, &data[..]);

        let part = fetch(
            addr,
            "GET /blob HTTP/1.1\r\nRange: bytes=1000-1999\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (head, body) = split(&part);
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        assert!(
            head.contains("Content-Range: bytes 1000-1999/3000000"),
            "{head}"
        );
        assert_eq!(body, &data[1000..2000]);

        let tail = fetch(
            addr,
            "GET /blob HTTP/1.1\r\nRange: bytes=-7\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(split(&tail).1, &data[data.len() - 7..]);

        let none = fetch(
            addr,
            "GET /blob HTTP/1.1\r\nRange: bytes=5000000-\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(split(&none).0.starts_with("HTTP/1.1 416"));

        let missing = fetch(
            addr,
            "GET /../etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(split(&missing).0.starts_with("HTTP/1.1 404"));

        // Keep-alive: two requests on one connection.
        let two = fetch(
            addr,
            "GET /blob HTTP/1.1\r\nRange: bytes=0-2\r\n\r\nGET /blob HTTP/1.1\r\nRange: bytes=3-5\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (_, rest) = split(&two);
        assert_eq!(&rest[..3], &data[..3]);
        let (head, body) = split(&rest[3..]);
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        assert_eq!(body, &data[3..6]);
    }
}
