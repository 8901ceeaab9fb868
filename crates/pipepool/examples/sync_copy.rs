//! Receives one TCP connection and writes everything it sends to a file
//! with [`pipepool::copy`]: socket -> pooled pipe -> file through
//! `splice(2)`, the bytes never enter user space.
//!
//! ```sh
//! cargo run -p pipepool --example sync_copy                      # sends itself 16 MiB
//! cargo run -p pipepool --example sync_copy -- 127.0.0.1:9000 /tmp/out
//! # then, elsewhere: nc 127.0.0.1 9000 < some-file
//! ```
//!
//! Arguments: the address to listen on and the file to write. Without a
//! listen address the example listens on a free loopback port and connects
//! to itself from a thread, so it runs on its own.

use std::fs::File;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::{env, thread};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = env::args().skip(1);
    let listen = args.next();
    let path = args.next().map_or_else(
        || env::temp_dir().join("pipepool-sync-copy.out"),
        Into::into,
    );

    let listener = TcpListener::bind(listen.as_deref().unwrap_or("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let sender = listen.is_none().then(|| {
        thread::spawn(move || -> std::io::Result<u64> {
            let mut socket = TcpStream::connect(addr)?;
            let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
            for _ in 0..16 {
                socket.write_all(&chunk)?;
            }
            socket.shutdown(Shutdown::Write)?;
            Ok(16 * chunk.len() as u64)
        })
    });
    println!("listening on {addr}, writing to {}", path.display());

    let (socket, peer) = listener.accept()?;
    let file = File::create(&path)?;
    // Until end of file on the socket. An error still says how many bytes
    // reached the file (`CopyError::transfer`).
    let moved = pipepool::copy(&socket, &file)?;
    println!("{peer}: {moved} bytes copied to {}", path.display());

    assert_eq!(file.metadata()?.len(), moved);
    if let Some(sender) = sender {
        let sent = sender.join().expect("the sender thread panicked")?;
        assert_eq!(moved, sent, "every byte sent reached the file");
    }
    Ok(())
}
