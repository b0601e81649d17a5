//! An implementation in another process, spoken to with the adapter
//! protocol: one JSON object per line on its stdin, one answer per line on
//! its stdout. Its stderr passes through to ours.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value};

use crate::protocol::{Implementation, ImplementationInfo, Request, Response};

/// Why an adapter could not be started or spoken to.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The program did not start.
    #[error("cannot start adapter `{command}`: {error}")]
    Start {
        /// The command line.
        command: String,
        /// Why.
        error: std::io::Error,
    },
    /// Writing to or reading from the adapter failed.
    #[error("{what} the adapter: {error}")]
    Io {
        /// `writing to` or `reading from`.
        what: &'static str,
        /// Why.
        error: std::io::Error,
    },
    /// The command line is empty.
    #[error("--adapter needs a command")]
    NoCommand,
    /// The adapter closed its output.
    #[error("the adapter closed its output (did it crash? see its stderr above)")]
    Closed,
    /// The adapter answered with a line that is not JSON.
    #[error("the adapter answered with a line that is not JSON: {line}")]
    NotJson {
        /// The line, trimmed.
        line: String,
    },
    /// The `hello` handshake failed: no answer, a refusal, or a malformed
    /// answer.
    #[error("adapter `{command}` {detail}")]
    Hello {
        /// The command line.
        command: String,
        /// What went wrong.
        detail: String,
    },
}

/// A running adapter program.
pub struct ExternalImplementation {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    info: ImplementationInfo,
    command: String,
}

impl ExternalImplementation {
    /// Starts the program of `command_line` (split on white space: the
    /// program, then its arguments) and performs the `hello` handshake.
    pub fn from_command_line(command_line: &str) -> Result<ExternalImplementation, AdapterError> {
        let mut words = command_line.split_whitespace().map(str::to_string);
        let program = words.next().ok_or(AdapterError::NoCommand)?;
        let rest: Vec<String> = words.collect();
        ExternalImplementation::spawn(&program, &rest)
    }

    /// Starts `program args...` and performs the `hello` handshake.
    pub fn spawn(program: &str, args: &[String]) -> Result<ExternalImplementation, AdapterError> {
        let command = std::iter::once(program.to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| AdapterError::Start {
                command: command.clone(),
                error,
            })?;
        // Both were asked for as pipes above.
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(AdapterError::Closed);
        };
        let mut adapter = ExternalImplementation {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            info: ImplementationInfo::default(),
            command: command.clone(),
        };
        let hello = adapter
            .exchange(&json!({"id": "hello", "operation": "hello", "format": "deepmail-adapter/1"}))
            .map_err(|e| AdapterError::Hello {
                command: command.clone(),
                detail: format!("did not answer the hello handshake: {e}"),
            })?;
        if hello.get("result").and_then(Value::as_str) != Some("ok") {
            return Err(AdapterError::Hello {
                command,
                detail: format!("refused the hello handshake: {hello}"),
            });
        }
        adapter.info = serde_json::from_value(hello.get("output").cloned().unwrap_or(Value::Null))
            .map_err(|e| AdapterError::Hello {
                command: command.clone(),
                detail: format!("sent a malformed hello answer: {hello}: {e}"),
            })?;
        Ok(adapter)
    }

    fn exchange(&mut self, request: &Value) -> Result<Value, AdapterError> {
        // A Value always serialises.
        let mut line = request.to_string();
        line.push('\n');
        let io = |what| move |error| AdapterError::Io { what, error };
        self.stdin
            .write_all(line.as_bytes())
            .map_err(io("writing to"))?;
        self.stdin.flush().map_err(io("writing to"))?;
        let mut answer = String::new();
        let n = self
            .stdout
            .read_line(&mut answer)
            .map_err(io("reading from"))?;
        if n == 0 {
            return Err(AdapterError::Closed);
        }
        serde_json::from_str(&answer).map_err(|_| AdapterError::NotJson {
            line: answer.trim().to_string(),
        })
    }
}

impl Implementation for ExternalImplementation {
    fn info(&self) -> &ImplementationInfo {
        &self.info
    }

    fn call(&mut self, request: &Request) -> Response {
        let value = match serde_json::to_value(request) {
            Ok(v) => v,
            Err(e) => {
                return Response::Error {
                    code: "runner-error".into(),
                    message: e.to_string(),
                }
            }
        };
        let answer = match self.exchange(&value) {
            Ok(a) => a,
            Err(e) => {
                return Response::Error {
                    code: "adapter-failed".into(),
                    message: format!("adapter `{}`: {e}", self.command),
                }
            }
        };
        if answer.get("id").and_then(Value::as_str) != Some(request.id.as_str()) {
            return Response::Error {
                code: "adapter-failed".into(),
                message: format!(
                    "adapter answered id {:?} to request {}",
                    answer.get("id"),
                    request.id
                ),
            };
        }
        match answer.get("result").and_then(Value::as_str) {
            Some("ok") => Response::Ok(answer.get("output").cloned().unwrap_or(Value::Null)),
            Some("error") => {
                let err = answer.get("error").cloned().unwrap_or(Value::Null);
                Response::Error {
                    code: err
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    message: err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                }
            }
            Some("unsupported") => Response::Unsupported(
                answer
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("not implemented")
                    .to_string(),
            ),
            _ => Response::Error {
                code: "adapter-failed".into(),
                message: format!("malformed answer: {answer}"),
            },
        }
    }
}

impl Drop for ExternalImplementation {
    fn drop(&mut self) {
        // Closing stdin asks the adapter to exit; don't wait forever.
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
