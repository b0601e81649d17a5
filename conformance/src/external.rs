//! An implementation in another process, spoken to with the adapter
//! protocol: one JSON object per line on its stdin, one answer per line on
//! its stdout. Its stderr passes through to ours.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::protocol::{Implementation, ImplementationInfo, Request, Response};

/// A running adapter program.
pub struct ExternalImplementation {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    info: ImplementationInfo,
    command: String,
}

impl ExternalImplementation {
    /// Starts `program args...` and performs the `hello` handshake.
    pub fn spawn(program: &str, args: &[String]) -> anyhow::Result<ExternalImplementation> {
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
            .with_context(|| format!("cannot start adapter `{command}`"))?;
        let stdin = child.stdin.take().context("adapter stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("adapter stdout")?);
        let mut adapter = ExternalImplementation {
            child,
            stdin,
            stdout,
            info: ImplementationInfo::default(),
            command: command.clone(),
        };
        let hello = adapter
            .exchange(&json!({"id": "hello", "operation": "hello", "format": "deepmail-adapter/1"}))
            .with_context(|| format!("adapter `{command}` did not answer the hello handshake"))?;
        if hello.get("result").and_then(Value::as_str) != Some("ok") {
            bail!("adapter `{command}` refused the hello handshake: {hello}");
        }
        adapter.info = serde_json::from_value(hello.get("output").cloned().unwrap_or(Value::Null))
            .with_context(|| {
                format!("adapter `{command}` sent a malformed hello answer: {hello}")
            })?;
        Ok(adapter)
    }

    fn exchange(&mut self, request: &Value) -> anyhow::Result<Value> {
        let mut line = serde_json::to_string(request)?;
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .context("writing to the adapter")?;
        self.stdin.flush()?;
        let mut answer = String::new();
        let n = self
            .stdout
            .read_line(&mut answer)
            .context("reading from the adapter")?;
        if n == 0 {
            bail!("the adapter closed its output (did it crash? see its stderr above)");
        }
        serde_json::from_str(&answer).with_context(|| {
            format!(
                "the adapter answered with a line that is not JSON: {}",
                answer.trim()
            )
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
                    message: format!("adapter `{}`: {e:#}", self.command),
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
