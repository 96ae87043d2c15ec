//! A node's command agent: one long-lived engine exec of a small perl program inside the node that
//! runs each command the harness asks for as its own child process, with the exec's environment, in
//! the asked working directory, stdin from `/dev/null` — what an engine exec gives a command.
//!
//! Why: every engine exec costs the machine about 0.1 core-second (the engine's request handling, a
//! shim, a runc process; measured on Docker 20.10 here: 20 execs of `true` through the API, 1.94
//! busy core-seconds), and a run makes dozens — polls, steps, checks, journals. Through the agent a
//! command costs one fork in the node. The transcript is unchanged: each command is still asked
//! for, and answered, on its own.
//!
//! The wire is framed both ways. Requests: `R <id> <hex workdir> <hex arg>…` and `K <id>` (kill the
//! command's process group: a command that outlives its deadline is ended, not left running).
//! Answers: `O <id> <length>\n<bytes>`, `E <id> <length>\n<bytes>` (stdout, stderr) and
//! `X <id> <status>` (the exit code, or 128 + the signal, as the engine reports an exec's).
//! The agent ends when its stdin closes, killing what it still runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::engine::{within, AttachedExec, Engine, EngineError, ExecOutput};

/// The agent, run as `perl -e AGENT`. perl-base is in every Debian base (the port-forward's relay
/// uses it too); IO::Select and POSIX are part of it.
const AGENT: &str = r#"
use strict; use IO::Select; use POSIX ();
binmode STDIN; binmode STDOUT;
my (%run, %of);
my $sel = IO::Select->new(\*STDIN);
my $in = '';
sub put { my ($m) = @_; my $o = 0;
  while ($o < length $m) { my $w = syswrite(STDOUT, $m, length($m) - $o, $o);
    exit 1 unless defined $w; $o += $w; } }
sub frame { my ($k, $id, $d) = @_; put("$k $id " . length($d) . "\n" . $d); }
sub start { my ($id, $wd, @argv) = @_;
  pipe(my $or, my $ow) or return frame('E', $id, "agent: pipe: $!\n"), put("X $id 126\n");
  pipe(my $er, my $ew) or return frame('E', $id, "agent: pipe: $!\n"), put("X $id 126\n");
  my $pid = fork();
  if (!defined $pid) { frame('E', $id, "agent: fork: $!\n"); put("X $id 126\n"); return; }
  if ($pid == 0) {
    setpgrp(0, 0);
    open(STDIN, '<', '/dev/null'); open(STDOUT, '>&', $ow); open(STDERR, '>&', $ew);
    close $or; close $er; close $ow; close $ew;
    $SIG{$_} = 'DEFAULT' for qw(PIPE CHLD INT TERM HUP);
    chdir $wd or do { print STDERR "chdir $wd: $!\n"; POSIX::_exit(126); };
    exec { $argv[0] } @argv;
    print STDERR "exec $argv[0]: $!\n";
    POSIX::_exit($!{ENOENT} ? 127 : 126);
  }
  close $ow; close $ew;
  $run{$id} = { pid => $pid, fhs => [$or, $er] };
  $of{fileno $or} = [$id, 'O', $or]; $of{fileno $er} = [$id, 'E', $er];
  $sel->add($or, $er);
}
sub shut { my ($fh) = @_; $sel->remove($fh); delete $of{fileno $fh}; close $fh; }
sub relay { my ($fh) = @_; my $e = $of{fileno $fh};
  my $n = sysread($fh, my $b, 65536);
  if ($n) { frame($e->[1], $e->[0], $b); return 1; }
  shut($fh); return 0; }
sub finish { my ($id, $status) = @_;
  for my $fh (@{$run{$id}{fhs}}) {
    next unless defined fileno($fh) && $of{fileno $fh};
    while (IO::Select->new($fh)->can_read(0)) { last unless relay($fh); }
    shut($fh) if defined fileno($fh) && $of{fileno $fh};
  }
  delete $run{$id}; put("X $id $status\n"); }
while (1) {
  for my $fh ($sel->can_read(%run ? 0.02 : undef)) {
    if (fileno($fh) == 0) {
      my $n = sysread(STDIN, my $b, 65536);
      if (!$n) { kill 'KILL', -$_->{pid} for values %run; exit 0; }
      $in .= $b;
      while ($in =~ s/^([^\n]*)\n//) { my ($k, $id, @f) = split / /, $1;
        if ($k eq 'R') { start($id, map { pack('H*', $_) } @f); }
        elsif ($k eq 'K' && $run{$id}) { kill 'KILL', -$run{$id}{pid}; } }
    } elsif ($of{fileno $fh}) { relay($fh); }
  }
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $st = $?; my ($id) = grep { $run{$_}{pid} == $pid } keys %run;
    finish($id, ($st & 127) ? 128 + ($st & 127) : $st >> 8) if defined $id;
  }
}
"#;

/// What the agent says about one command.
enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i64),
}

type Waiting = Arc<StdMutex<HashMap<u64, mpsc::UnboundedSender<Event>>>>;

/// A running agent in one node. Dropping it closes its stdin (it ends, with what it ran).
pub struct Agent {
    input: Mutex<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    waiting: Waiting,
    next: AtomicU64,
    reader: JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The error for a command the agent stopped answering about.
fn ended(action: String) -> EngineError {
    EngineError::Request {
        action,
        source: bollard::errors::Error::DockerStreamError {
            error: "the node's command agent ended (the node stopped or restarted)".into(),
        },
    }
}

impl Agent {
    /// Starts the agent in `container`.
    pub async fn start(engine: &Engine, container: &str) -> Result<Self, EngineError> {
        let AttachedExec { output, input } = engine
            .exec_attached(container, &["perl", "-e", AGENT])
            .await?;
        let waiting: Waiting = Arc::default();
        let reader = tokio::spawn(read_frames(output, waiting.clone()));
        Ok(Self {
            input: Mutex::new(input),
            waiting,
            next: AtomicU64::new(0),
            reader,
        })
    }

    /// False once the agent's output has ended: it cannot run anything more.
    pub fn is_alive(&self) -> bool {
        !self.reader.is_finished()
    }

    /// Runs `argv` in `workdir`, as [`Engine::exec`] does; `printed` is told at the first output.
    /// A command still running at `timeout` is killed, and the timeout reported.
    pub async fn run(
        &self,
        argv: &[&str],
        workdir: &str,
        timeout: Duration,
        mut printed: Option<oneshot::Sender<()>>,
    ) -> Result<ExecOutput, EngineError> {
        let action = || format!("run {:?} in the node", argv.join(" "));
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, mut events) = mpsc::unbounded_channel();
        self.lock_waiting().insert(id, tx);
        let mut request = format!("R {id} {}", hex::encode(workdir));
        for arg in argv {
            request.push(' ');
            request.push_str(&hex::encode(arg));
        }
        request.push('\n');
        let start = Instant::now();
        if self.send(&request).await.is_err() {
            self.lock_waiting().remove(&id);
            return Err(ended(action()));
        }
        let ran = within(timeout, action, async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(event) = events.recv().await {
                match event {
                    Event::Stdout(bytes) => stdout.extend_from_slice(&bytes),
                    Event::Stderr(bytes) => stderr.extend_from_slice(&bytes),
                    Event::Exit(exit_code) => {
                        return Ok(ExecOutput {
                            exit_code,
                            stdout: String::from_utf8_lossy(&stdout).into_owned(),
                            stderr: String::from_utf8_lossy(&stderr).into_owned(),
                            duration: start.elapsed(),
                        })
                    }
                }
                if let Some(printed) = printed.take() {
                    // The receiver may have stopped listening; the command goes on regardless.
                    let _ = printed.send(());
                }
            }
            Err(ended(action()))
        })
        .await;
        if ran.is_err() && self.lock_waiting().remove(&id).is_some() {
            // Timed out (or the agent went): end the command rather than leave it running.
            let _ = self.send(&format!("K {id}\n")).await;
        }
        ran
    }

    fn lock_waiting(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::UnboundedSender<Event>>> {
        // A panic while holding this lock leaves a map that is still whole.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(&self, line: &str) -> std::io::Result<()> {
        let mut input = self.input.lock().await;
        input.write_all(line.as_bytes()).await?;
        input.flush().await
    }
}

/// Reads the agent's frames and hands each to the command it is about; when the stream ends,
/// every command still waiting hears that it ended.
async fn read_frames(
    mut output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    waiting: Waiting,
) {
    let mut frames = Frames::default();
    while let Some(Ok(chunk)) = output.next().await {
        let bytes = match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => message,
            // The agent's own complaints (a perl error) go nowhere useful: it is the next frame
            // that matters, or the stream's end.
            LogOutput::StdErr { .. } | LogOutput::StdIn { .. } => continue,
        };
        frames.buffer.extend_from_slice(&bytes);
        while let Some((id, event)) = frames.next() {
            let mut map = waiting.lock().unwrap_or_else(|e| e.into_inner());
            let done = matches!(event, Event::Exit(_));
            if let Some(tx) = map.get(&id) {
                let _ = tx.send(event);
            }
            if done {
                map.remove(&id);
            }
        }
    }
    // Dropping the senders tells every waiting command the agent ended.
    waiting.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The agent's output, cut into frames.
#[derive(Default)]
struct Frames {
    buffer: Vec<u8>,
}

impl Frames {
    /// The next whole frame, if the buffer holds one.
    fn next(&mut self) -> Option<(u64, Event)> {
        let newline = self.buffer.iter().position(|&b| b == b'\n')?;
        let header = String::from_utf8_lossy(&self.buffer[..newline]).into_owned();
        let mut fields = header.split(' ');
        let (kind, id, number) = (fields.next()?, fields.next()?, fields.next()?);
        let (id, number): (u64, i64) = (id.parse().ok()?, number.parse().ok()?);
        if kind == "X" {
            self.buffer.drain(..=newline);
            return Some((id, Event::Exit(number)));
        }
        let end = newline + 1 + usize::try_from(number).ok()?;
        if self.buffer.len() < end {
            return None;
        }
        let payload = self.buffer[newline + 1..end].to_vec();
        self.buffer.drain(..end);
        Some((
            id,
            if kind == "E" {
                Event::Stderr(payload)
            } else {
                Event::Stdout(payload)
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_whole_even_when_they_arrive_in_pieces() {
        let mut frames = Frames::default();
        frames.buffer.extend_from_slice(b"O 3 5\nhel");
        assert!(frames.next().is_none());
        frames.buffer.extend_from_slice(b"lo");
        frames.buffer.extend_from_slice(b"E 3 2\n\n\nX 3 137\n");
        let Some((3, Event::Stdout(out))) = frames.next() else {
            panic!("stdout frame");
        };
        assert_eq!(out, b"hello");
        // A payload may hold newlines: its length, not a line, ends it.
        let Some((3, Event::Stderr(err))) = frames.next() else {
            panic!("stderr frame");
        };
        assert_eq!(err, b"\n\n");
        let Some((3, Event::Exit(137))) = frames.next() else {
            panic!("exit frame");
        };
        assert!(frames.next().is_none());
        assert!(frames.buffer.is_empty());
    }
}
