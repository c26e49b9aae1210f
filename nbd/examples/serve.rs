//! Serves an image over NBD until interrupted: `cargo run -p vhd-nbd --example serve --
//! IMAGE SOCKET` (the `vhd serve` command is the full one).

use std::sync::{Arc, RwLock};
use vhd_core::{Image, OpenOptions};
use vhd_nbd::{Address, ServeOptions, Server};

fn main() -> Result<(), vhd_core::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, socket] = &args[..] else {
        eprintln!("usage: serve IMAGE SOCKET");
        std::process::exit(2);
    };
    let image = Image::open(image, &OpenOptions::default())?;
    let options = ServeOptions {
        log: Some(Arc::new(|line: &str| eprintln!("{line}"))),
        ..ServeOptions::default()
    };
    let server = Server::start(
        Arc::new(RwLock::new(image)),
        &Address::Unix(socket.into()),
        options,
    )?;
    eprintln!("serving on {}", server.address());
    server.wait();
    Ok(())
}
