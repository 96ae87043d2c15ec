//! The port-forward: reaches a port the node binds only on its own loopback (the tutorial's
//! `127.0.0.1:2379`) from the harness host, without changing etcd's binding.
//!
//! A local `TcpListener` on 127.0.0.1:0; each accepted connection is piped through a Docker exec of a
//! small perl relay inside the node (perl-base is in every Debian base; socat is not). Bytes are
//! opaque: TLS runs end to end between the client and etcd. Half-closes pass both ways. Dropping the
//! [`Forward`] stops accepting and ends every relay.

use std::net::SocketAddr;

use bollard::container::LogOutput;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::engine::Engine;

/// A relay between the exec's stdin/stdout and a TCP connection to `$ARGV[0]:$ARGV[1]` in the node.
/// It exits when the server side closes; stdin's end half-closes the connection towards the server.
const RELAY: &str = r#"
use strict; use IO::Socket::INET; use IO::Select;
my ($host, $port) = @ARGV;
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => "tcp")
  or die "relay: connect $host:$port: $!\n";
binmode STDIN; binmode STDOUT; binmode $s;
my $sel = IO::Select->new(\*STDIN, $s);
sub put { my ($fh, $buf) = @_; my $off = 0;
  while ($off < length $buf) {
    my $w = syswrite($fh, $buf, length($buf) - $off, $off);
    die "relay: write: $!\n" unless defined $w; $off += $w; } }
while (1) {
  for my $fh ($sel->can_read) {
    my $n = sysread($fh, my $buf, 65536);
    if ($fh == $s) { exit 0 unless $n; put(\*STDOUT, $buf); }
    elsif ($n) { put($s, $buf); }
    else { $sel->remove(\*STDIN); shutdown($s, 1); }
  }
}
"#;

/// Errors setting up the forward.
#[derive(Debug, thiserror::Error)]
#[error("failed to listen on 127.0.0.1 for the port-forward: {0}")]
pub struct ForwardError(#[source] std::io::Error);

/// A running port-forward to a loopback port inside a node.
pub struct Forward {
    local: SocketAddr,
    accept: JoinHandle<()>,
}

impl Forward {
    /// Forwards a fresh local port to `127.0.0.1:port` inside `container`.
    pub async fn start(engine: &Engine, container: &str, port: u16) -> Result<Self, ForwardError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ForwardError)?;
        let local = listener.local_addr().map_err(ForwardError)?;
        let engine = engine.clone();
        let container = container.to_owned();
        let accept = tokio::spawn(async move {
            // Owned by this task: aborting it drops the set, which aborts every relay.
            let mut relays = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                relays.spawn(relay(engine.clone(), container.clone(), stream, port));
                while relays.try_join_next().is_some() {}
            }
        });
        Ok(Self { local, accept })
    }

    /// The local address to dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Pipes one client connection through one relay exec; a failure closes that connection only (the
/// client sees its connection end, as it would if the port refused).
async fn relay(engine: Engine, container: String, stream: TcpStream, port: u16) {
    let port = port.to_string();
    let Ok(exec) = engine
        .exec_attached(&container, &["perl", "-e", RELAY, "127.0.0.1", &port])
        .await
    else {
        return;
    };
    let (mut from_client, mut to_client) = stream.into_split();
    let mut input = exec.input;
    let mut output = exec.output;
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if input.write_all(&buf[..n]).await.is_err() || input.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
        // Half-close towards etcd: the relay sees EOF on stdin and shuts its socket's write side.
        let _ = input.shutdown().await;
    };
    let downstream = async {
        while let Some(Ok(frame)) = output.next().await {
            if let LogOutput::StdOut { message } = frame {
                if to_client.write_all(&message).await.is_err() {
                    break;
                }
            }
        }
        let _ = to_client.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
