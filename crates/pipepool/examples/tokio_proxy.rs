//! A TCP proxy on [`pipepool::tokio::copy_bidirectional`]: every accepted
//! connection is relayed to the upstream through pooled pipes with
//! `splice(2)`, so the bytes never enter user space.
//!
//! ```sh
//! cargo run -p pipepool --example tokio_proxy --features tokio -- [LISTEN] [UPSTREAM]
//! ```
//!
//! Defaults: listen on 127.0.0.1:8080, forward to 127.0.0.1:8000 (try
//! `python3 -m http.server 8000` as the upstream and
//! `curl 127.0.0.1:8080` as the client).

use std::env;

use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());

    let listener = TcpListener::bind(&listen).await?;
    println!("proxying {} -> {upstream}", listener.local_addr()?);
    loop {
        let (mut client, peer) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let mut server = match TcpStream::connect(&upstream).await {
                Ok(server) => server,
                Err(e) => return eprintln!("{peer}: cannot connect to {upstream}: {e}"),
            };
            // A drop-in for tokio::io::copy_bidirectional: same arguments,
            // same result, half-closes passed on.
            match pipepool::tokio::copy_bidirectional(&mut client, &mut server).await {
                Ok((up, down)) => println!("{peer}: {up} bytes up, {down} bytes down"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    }
}
