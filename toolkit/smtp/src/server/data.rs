//! Reading message data: dot-unstuffing up to `CRLF . CRLF` (RFC 5321
//! §4.5.2), bare CR and LF flagged, never taken as line ends.

use super::*;

/// Reads message content after `354` (RFC 5321 §4.1.1.4, §4.5.2): undoes
/// dot-stuffing and stops at exactly `CRLF . CRLF`. Bare LF and bare CR
/// are kept in the content but flagged (the message is then refused) and
/// never end a line, so the terminator cannot be smuggled.
#[derive(Debug)]
pub(super) struct DataReader {
    pub(super) state: DataState,
    pub(super) content: Vec<u8>,
    /// Octets after unstuffing, stored or not.
    pub(super) size: u64,
    pub(super) limit: u64,
    pub(super) oversize: bool,
    pub(super) bare_lf: bool,
    pub(super) bare_cr: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataState {
    /// At the start of a line (after CRLF, or right after `354`).
    LineStart,
    /// Read `.` at the start of a line.
    Dot,
    /// Read `.` CR at the start of a line.
    DotCr,
    /// Inside a line.
    Middle,
    /// Read CR inside a line.
    Cr,
}

impl DataReader {
    pub(super) fn new(limit: u64) -> DataReader {
        DataReader {
            state: DataState::LineStart,
            content: Vec::new(),
            size: 0,
            limit,
            oversize: false,
            bare_lf: false,
            bare_cr: false,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.oversize {
            return;
        }
        if self.size > self.limit {
            self.oversize = true;
            self.content = Vec::new();
        } else {
            self.content.extend_from_slice(bytes);
        }
    }

    /// Consume `input`; returns the octets used and whether the final
    /// `.` line (included in those octets) was reached.
    pub(super) fn read(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                DataState::LineStart => {
                    if b == b'.' {
                        self.state = DataState::Dot;
                        i += 1;
                    } else {
                        self.state = DataState::Middle;
                    }
                }
                DataState::Dot => {
                    if b == b'\r' {
                        self.state = DataState::DotCr;
                        i += 1;
                    } else {
                        // A stuffed dot: dropped.
                        self.state = DataState::Middle;
                    }
                }
                DataState::DotCr => {
                    if b == b'\n' {
                        return (i + 1, true);
                    }
                    self.bare_cr = true;
                    self.push(b"\r");
                    self.state = DataState::Middle;
                }
                DataState::Middle => match memchr2(b'\r', b'\n', &input[i..]) {
                    None => {
                        self.push(&input[i..]);
                        i = input.len();
                    }
                    Some(k) => {
                        self.push(&input[i..i + k]);
                        if input[i + k] == b'\n' {
                            self.bare_lf = true;
                            self.push(b"\n");
                        } else {
                            self.state = DataState::Cr;
                        }
                        i += k + 1;
                    }
                },
                DataState::Cr => {
                    if b == b'\n' {
                        self.push(b"\r\n");
                        self.state = DataState::LineStart;
                        i += 1;
                    } else {
                        self.bare_cr = true;
                        self.push(b"\r");
                        self.state = DataState::Middle;
                    }
                }
            }
        }
        (i, false)
    }
}
