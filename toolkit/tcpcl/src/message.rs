//! The TCPCLv4 wire format: the contact header (RFC 9174 §4.2) and the
//! seven message types (§4.6, §5.1, §5.2, §6.1), encoded and decoded.
//!
//! Every integer is big-endian ("network byte order", §4.1). Decoding is
//! incremental: [`decode_message`] looks at the front of a buffer and
//! either returns one message and how many bytes it took, says it needs
//! more bytes (`Ok(None)`), or rejects the input. Length fields are checked
//! against [`DecodeLimits`] as soon as they are read, before the bytes they
//! announce have arrived and before anything is allocated for them.

use std::fmt;

/// The contact header's magic string, "dtn!" (§4.2).
pub const MAGIC: [u8; 4] = *b"dtn!";
/// The protocol version this crate speaks (§4.2).
pub const VERSION: u8 = 4;
/// Length of the contact header: magic, version, flags.
pub const CONTACT_HEADER_LEN: usize = 6;

/// Contact header flag: the sender can use TLS (§4.2).
pub const CONTACT_CAN_TLS: u8 = 0x01;
/// XFER_SEGMENT / XFER_ACK flag: the last segment of a transfer (§5.2.2).
pub const SEGMENT_END: u8 = 0x01;
/// XFER_SEGMENT / XFER_ACK flag: the first segment of a transfer (§5.2.2).
pub const SEGMENT_START: u8 = 0x02;
/// SESS_TERM flag: this message acknowledges an earlier SESS_TERM (§6.1).
pub const SESS_TERM_REPLY: u8 = 0x01;
/// Extension item flag: the receiver must understand the item (§4.8, §5.2.5).
pub const EXTENSION_CRITICAL: u8 = 0x01;
/// Transfer extension type of the Transfer Length extension (§5.2.5.1).
pub const TRANSFER_LENGTH_EXTENSION: u16 = 0x0001;

/// Message type codes (§4.1, §5.1, §5.2, §4.6, §6.1).
mod kind {
    pub(super) const XFER_SEGMENT: u8 = 0x01;
    pub(super) const XFER_ACK: u8 = 0x02;
    pub(super) const XFER_REFUSE: u8 = 0x03;
    pub(super) const KEEPALIVE: u8 = 0x04;
    pub(super) const SESS_TERM: u8 = 0x05;
    pub(super) const MSG_REJECT: u8 = 0x06;
    pub(super) const SESS_INIT: u8 = 0x07;
}

/// The contact header each entity sends first (§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactHeader {
    /// Protocol version; 4 for RFC 9174.
    pub version: u8,
    /// Contact header flags; [`CONTACT_CAN_TLS`] is the only one defined.
    pub flags: u8,
}

impl ContactHeader {
    /// A contact header of version 4 without CAN_TLS (a session that
    /// offers TLS sets [`CONTACT_CAN_TLS`] in `flags`).
    pub const OURS: ContactHeader = ContactHeader {
        version: VERSION,
        flags: 0,
    };

    /// Whether the sender offered TLS.
    pub fn can_tls(&self) -> bool {
        self.flags & CONTACT_CAN_TLS != 0
    }

    /// The six bytes on the wire.
    pub fn encode(&self) -> [u8; CONTACT_HEADER_LEN] {
        let mut out = [0u8; CONTACT_HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = self.version;
        out[5] = self.flags;
        out
    }

    /// Reads a contact header from the front of `buf`: `Ok(None)` until
    /// six bytes are there, an error as soon as the magic is wrong (§4.3:
    /// such a peer is not a TCPCL entity and the connection is closed
    /// without a SESS_TERM).
    pub fn decode(buf: &[u8]) -> Result<Option<ContactHeader>, DecodeError> {
        let seen = buf.len().min(MAGIC.len());
        if buf[..seen] != MAGIC[..seen] {
            let mut found = [0u8; 4];
            found[..seen].copy_from_slice(&buf[..seen]);
            return Err(DecodeError::BadMagic {
                found: found[..seen].to_vec(),
            });
        }
        if buf.len() < CONTACT_HEADER_LEN {
            return Ok(None);
        }
        Ok(Some(ContactHeader {
            version: buf[4],
            flags: buf[5],
        }))
    }
}

/// SESS_TERM reason codes (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessTermReason {
    /// 0x00: no reason given (also used for an ordinary end of a session).
    Unknown,
    /// 0x01: the session was idle too long.
    IdleTimeout,
    /// 0x02: the peer's contact header has another version.
    VersionMismatch,
    /// 0x03: the entity is too busy for this session.
    Busy,
    /// 0x04: the session parameters could not be agreed (e.g. an unknown
    /// critical session extension, an invalid node ID).
    ContactFailure,
    /// 0x05: the entity ran out of a resource (e.g. transfer IDs, or a
    /// segment larger than it accepts).
    ResourceExhaustion,
    /// An unassigned code, kept as received.
    Other(u8),
}

impl SessTermReason {
    /// The reason for a code on the wire.
    pub fn from_code(code: u8) -> SessTermReason {
        match code {
            0x00 => SessTermReason::Unknown,
            0x01 => SessTermReason::IdleTimeout,
            0x02 => SessTermReason::VersionMismatch,
            0x03 => SessTermReason::Busy,
            0x04 => SessTermReason::ContactFailure,
            0x05 => SessTermReason::ResourceExhaustion,
            other => SessTermReason::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            SessTermReason::Unknown => 0x00,
            SessTermReason::IdleTimeout => 0x01,
            SessTermReason::VersionMismatch => 0x02,
            SessTermReason::Busy => 0x03,
            SessTermReason::ContactFailure => 0x04,
            SessTermReason::ResourceExhaustion => 0x05,
            SessTermReason::Other(code) => code,
        }
    }
}

impl fmt::Display for SessTermReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessTermReason::Unknown => f.write_str("unknown (0x00)"),
            SessTermReason::IdleTimeout => f.write_str("idle timeout (0x01)"),
            SessTermReason::VersionMismatch => f.write_str("version mismatch (0x02)"),
            SessTermReason::Busy => f.write_str("busy (0x03)"),
            SessTermReason::ContactFailure => f.write_str("contact failure (0x04)"),
            SessTermReason::ResourceExhaustion => f.write_str("resource exhaustion (0x05)"),
            SessTermReason::Other(code) => write!(f, "unassigned reason {code:#04x}"),
        }
    }
}

/// XFER_REFUSE reason codes (§5.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// 0x00: no reason given.
    Unknown,
    /// 0x01: the receiver already has the complete bundle; the sender may
    /// consider it received.
    Completed,
    /// 0x02: the receiver's resources are exhausted (e.g. the bundle is
    /// larger than it takes); the sender should fragment before retrying.
    NoResources,
    /// 0x03: the receiver needs the bundle retransmitted in its entirety.
    Retransmit,
    /// 0x04: something about the bundle or its transfer extensions is not
    /// acceptable (e.g. not for this node); do not retry the same bundle.
    NotAcceptable,
    /// 0x05: processing the transfer extension items failed (e.g. an
    /// unknown critical extension).
    ExtensionFailure,
    /// 0x06: the session is ending and takes no new transfers.
    SessionTerminating,
    /// An unassigned code, kept as received.
    Other(u8),
}

impl RefuseReason {
    /// The reason for a code on the wire.
    pub fn from_code(code: u8) -> RefuseReason {
        match code {
            0x00 => RefuseReason::Unknown,
            0x01 => RefuseReason::Completed,
            0x02 => RefuseReason::NoResources,
            0x03 => RefuseReason::Retransmit,
            0x04 => RefuseReason::NotAcceptable,
            0x05 => RefuseReason::ExtensionFailure,
            0x06 => RefuseReason::SessionTerminating,
            other => RefuseReason::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            RefuseReason::Unknown => 0x00,
            RefuseReason::Completed => 0x01,
            RefuseReason::NoResources => 0x02,
            RefuseReason::Retransmit => 0x03,
            RefuseReason::NotAcceptable => 0x04,
            RefuseReason::ExtensionFailure => 0x05,
            RefuseReason::SessionTerminating => 0x06,
            RefuseReason::Other(code) => code,
        }
    }
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::Unknown => f.write_str("unknown (0x00)"),
            RefuseReason::Completed => f.write_str("completed (0x01)"),
            RefuseReason::NoResources => f.write_str("no resources (0x02)"),
            RefuseReason::Retransmit => f.write_str("retransmit (0x03)"),
            RefuseReason::NotAcceptable => f.write_str("not acceptable (0x04)"),
            RefuseReason::ExtensionFailure => f.write_str("extension failure (0x05)"),
            RefuseReason::SessionTerminating => f.write_str("session terminating (0x06)"),
            RefuseReason::Other(code) => write!(f, "unassigned reason {code:#04x}"),
        }
    }
}

/// MSG_REJECT reason codes (§5.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgRejectReason {
    /// 0x01: the message type is unknown.
    TypeUnknown,
    /// 0x02: the message is understood but cannot be complied with.
    Unsupported,
    /// 0x03: the message is not expected in the session's state.
    Unexpected,
    /// An unassigned code, kept as received.
    Other(u8),
}

impl MsgRejectReason {
    /// The reason for a code on the wire.
    pub fn from_code(code: u8) -> MsgRejectReason {
        match code {
            0x01 => MsgRejectReason::TypeUnknown,
            0x02 => MsgRejectReason::Unsupported,
            0x03 => MsgRejectReason::Unexpected,
            other => MsgRejectReason::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            MsgRejectReason::TypeUnknown => 0x01,
            MsgRejectReason::Unsupported => 0x02,
            MsgRejectReason::Unexpected => 0x03,
            MsgRejectReason::Other(code) => code,
        }
    }
}

impl fmt::Display for MsgRejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgRejectReason::TypeUnknown => f.write_str("message type unknown (0x01)"),
            MsgRejectReason::Unsupported => f.write_str("message unsupported (0x02)"),
            MsgRejectReason::Unexpected => f.write_str("message unexpected (0x03)"),
            MsgRejectReason::Other(code) => write!(f, "unassigned reason {code:#04x}"),
        }
    }
}

/// One session or transfer extension item (§4.8, §5.2.5): flags, type,
/// and a value of at most 65 535 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Item flags; [`EXTENSION_CRITICAL`] is the only one defined.
    pub flags: u8,
    /// Item type.
    pub item_type: u16,
    /// Item value.
    pub value: Vec<u8>,
}

impl Extension {
    /// Whether the receiver must understand this item.
    pub fn is_critical(&self) -> bool {
        self.flags & EXTENSION_CRITICAL != 0
    }

    /// The Transfer Length extension (§5.2.5.1) for a transfer of
    /// `total` bytes. Not critical: a receiver that does not know it
    /// skips it.
    pub fn transfer_length(total: u64) -> Extension {
        Extension {
            flags: 0,
            item_type: TRANSFER_LENGTH_EXTENSION,
            value: total.to_be_bytes().to_vec(),
        }
    }
}

/// SESS_INIT (§4.6): one entity's session parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessInit {
    /// Keepalive interval the sender wants, in seconds; 0 disables keepalives.
    pub keepalive_secs: u16,
    /// Largest XFER_SEGMENT data the sender accepts, in bytes.
    pub segment_mru: u64,
    /// Largest transfer (bundle) the sender accepts, in bytes.
    pub transfer_mru: u64,
    /// The sender's node ID, a URI such as `ipn:1.0` or `dtn://earth-gw/`.
    pub node_id: String,
    /// Session extension items.
    pub extensions: Vec<Extension>,
}

/// XFER_SEGMENT (§5.2.2): a piece of one transfer.
#[derive(Clone, PartialEq, Eq)]
pub struct XferSegment {
    /// [`SEGMENT_START`] and/or [`SEGMENT_END`] (other bits are kept).
    pub flags: u8,
    /// The transfer this segment belongs to.
    pub transfer_id: u64,
    /// Transfer extension items; on the wire only when START is set.
    pub extensions: Vec<Extension>,
    /// The segment's data.
    pub data: Vec<u8>,
}

impl fmt::Debug for XferSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Data can be megabytes: show its length, not its bytes.
        f.debug_struct("XferSegment")
            .field("flags", &self.flags)
            .field("transfer_id", &self.transfer_id)
            .field("extensions", &self.extensions)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl XferSegment {
    /// Whether this is the first segment of its transfer.
    pub fn is_start(&self) -> bool {
        self.flags & SEGMENT_START != 0
    }

    /// Whether this is the last segment of its transfer.
    pub fn is_end(&self) -> bool {
        self.flags & SEGMENT_END != 0
    }

    /// The total length announced by a Transfer Length extension, if there
    /// is one; an error when its value is not 8 bytes.
    pub fn transfer_length(&self) -> Result<Option<u64>, DecodeError> {
        match self
            .extensions
            .iter()
            .find(|e| e.item_type == TRANSFER_LENGTH_EXTENSION)
        {
            None => Ok(None),
            Some(e) => match <[u8; 8]>::try_from(e.value.as_slice()) {
                Ok(bytes) => Ok(Some(u64::from_be_bytes(bytes))),
                Err(_) => Err(DecodeError::BadTransferLength {
                    length: e.value.len(),
                }),
            },
        }
    }
}

/// XFER_ACK (§5.2.3): how much of a transfer has been received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XferAck {
    /// The flags of the segment being acknowledged.
    pub flags: u8,
    /// The transfer acknowledged.
    pub transfer_id: u64,
    /// Bytes of the transfer received so far (cumulative).
    pub acknowledged_length: u64,
}

/// XFER_REFUSE (§5.2.4): the receiver does not want (the rest of) a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XferRefuse {
    /// Why.
    pub reason: RefuseReason,
    /// The transfer refused.
    pub transfer_id: u64,
}

/// SESS_TERM (§6.1): the sender is ending the session, or acknowledges
/// that the peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessTerm {
    /// [`SESS_TERM_REPLY`] on the acknowledgement.
    pub flags: u8,
    /// Why.
    pub reason: SessTermReason,
}

impl SessTerm {
    /// Whether this acknowledges an earlier SESS_TERM.
    pub fn is_reply(&self) -> bool {
        self.flags & SESS_TERM_REPLY != 0
    }
}

/// MSG_REJECT (§5.1.2): the sender could not handle a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgReject {
    /// Why.
    pub reason: MsgRejectReason,
    /// The type code of the rejected message.
    pub rejected_type: u8,
}

/// A TCPCLv4 message (everything after the contact header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// 0x07 SESS_INIT.
    SessInit(SessInit),
    /// 0x05 SESS_TERM.
    SessTerm(SessTerm),
    /// 0x01 XFER_SEGMENT.
    XferSegment(XferSegment),
    /// 0x02 XFER_ACK.
    XferAck(XferAck),
    /// 0x03 XFER_REFUSE.
    XferRefuse(XferRefuse),
    /// 0x04 KEEPALIVE.
    Keepalive,
    /// 0x06 MSG_REJECT.
    MsgReject(MsgReject),
}

impl Message {
    /// The message type code on the wire.
    pub fn type_code(&self) -> u8 {
        match self {
            Message::SessInit(_) => kind::SESS_INIT,
            Message::SessTerm(_) => kind::SESS_TERM,
            Message::XferSegment(_) => kind::XFER_SEGMENT,
            Message::XferAck(_) => kind::XFER_ACK,
            Message::XferRefuse(_) => kind::XFER_REFUSE,
            Message::Keepalive => kind::KEEPALIVE,
            Message::MsgReject(_) => kind::MSG_REJECT,
        }
    }

    /// The message's name in RFC 9174, e.g. `XFER_SEGMENT`.
    pub fn name(&self) -> &'static str {
        type_name(self.type_code())
    }

    /// Appends the message's wire form to `out`. Fails only for values
    /// the format cannot carry (a node ID or extension value over 65 535
    /// bytes, extensions on a segment without START); `out` is unchanged
    /// then.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self.encode_unchecked(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The message's wire form as a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    fn encode_unchecked(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.type_code());
        match self {
            Message::SessInit(m) => {
                out.extend_from_slice(&m.keepalive_secs.to_be_bytes());
                out.extend_from_slice(&m.segment_mru.to_be_bytes());
                out.extend_from_slice(&m.transfer_mru.to_be_bytes());
                let len =
                    u16::try_from(m.node_id.len()).map_err(|_| EncodeError::NodeIdTooLong {
                        length: m.node_id.len(),
                    })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(m.node_id.as_bytes());
                encode_extensions(&m.extensions, out)?;
            }
            Message::SessTerm(m) => {
                out.push(m.flags);
                out.push(m.reason.code());
            }
            Message::XferSegment(m) => {
                out.push(m.flags);
                out.extend_from_slice(&m.transfer_id.to_be_bytes());
                if m.is_start() {
                    encode_extensions(&m.extensions, out)?;
                } else if !m.extensions.is_empty() {
                    return Err(EncodeError::ExtensionsWithoutStart);
                }
                out.extend_from_slice(&(m.data.len() as u64).to_be_bytes());
                out.extend_from_slice(&m.data);
            }
            Message::XferAck(m) => {
                out.push(m.flags);
                out.extend_from_slice(&m.transfer_id.to_be_bytes());
                out.extend_from_slice(&m.acknowledged_length.to_be_bytes());
            }
            Message::XferRefuse(m) => {
                out.push(m.reason.code());
                out.extend_from_slice(&m.transfer_id.to_be_bytes());
            }
            Message::Keepalive => {}
            Message::MsgReject(m) => {
                out.push(m.reason.code());
                out.push(m.rejected_type);
            }
        }
        Ok(())
    }

    /// Decodes exactly one message that fills `buf`: an error when `buf`
    /// is cut short ([`DecodeError::Truncated`]) or has bytes after the
    /// message ([`DecodeError::TrailingBytes`]).
    pub fn from_bytes(buf: &[u8], limits: &DecodeLimits) -> Result<Message, DecodeError> {
        match decode_message(buf, limits)? {
            Some((message, used)) if used == buf.len() => Ok(message),
            Some((_, used)) => Err(DecodeError::TrailingBytes {
                offset: used,
                extra: buf.len() - used,
            }),
            None => Err(DecodeError::Truncated { length: buf.len() }),
        }
    }
}

/// The RFC 9174 name of a message type code.
pub fn type_name(code: u8) -> &'static str {
    match code {
        kind::XFER_SEGMENT => "XFER_SEGMENT",
        kind::XFER_ACK => "XFER_ACK",
        kind::XFER_REFUSE => "XFER_REFUSE",
        kind::KEEPALIVE => "KEEPALIVE",
        kind::SESS_TERM => "SESS_TERM",
        kind::MSG_REJECT => "MSG_REJECT",
        kind::SESS_INIT => "SESS_INIT",
        _ => "unknown message type",
    }
}

fn encode_extensions(items: &[Extension], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let total: usize = items.iter().map(|e| 5 + e.value.len()).sum();
    let total =
        u32::try_from(total).map_err(|_| EncodeError::ExtensionsTooLong { length: total })?;
    out.extend_from_slice(&total.to_be_bytes());
    for e in items {
        let len = u16::try_from(e.value.len()).map_err(|_| EncodeError::ExtensionValueTooLong {
            item_type: e.item_type,
            length: e.value.len(),
        })?;
        out.push(e.flags);
        out.extend_from_slice(&e.item_type.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&e.value);
    }
    Ok(())
}

/// Bounds on what a decoder accepts, checked before allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest XFER_SEGMENT data length: the receiver's own segment MRU.
    pub max_segment_data: u64,
    /// Largest total length of a message's extension items.
    pub max_extensions_len: u32,
    /// Largest SESS_INIT node ID, in bytes.
    pub max_node_id_len: u16,
}

impl Default for DecodeLimits {
    /// 16 MiB segments, 64 KiB of extensions, 1 KiB node IDs.
    fn default() -> Self {
        DecodeLimits {
            max_segment_data: 16 << 20,
            max_extensions_len: 64 << 10,
            max_node_id_len: 1024,
        }
    }
}

/// Why bytes could not be decoded as TCPCLv4. Offsets count from the start
/// of the buffer given to the decoder (the start of one message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first bytes are not "dtn!": the peer does not speak TCPCL (§4.3).
    #[error("contact header starts with {found:02x?}, not the TCPCL magic \"dtn!\" (64 74 6e 21): the peer does not speak TCPCL")]
    BadMagic {
        /// The bytes found in place of the magic.
        found: Vec<u8>,
    },
    /// A message type code this version does not define (§5.1.2).
    #[error("unknown message type {code:#04x} at offset {offset} (TCPCLv4 defines 0x01..=0x07)")]
    UnknownType {
        /// The type code.
        code: u8,
        /// Where it is.
        offset: usize,
    },
    /// An XFER_SEGMENT longer than the receiver's segment MRU.
    #[error("XFER_SEGMENT announces {length} bytes of data at offset {offset}, over the segment MRU of {limit} bytes we advertised")]
    SegmentTooLong {
        /// The announced data length.
        length: u64,
        /// The limit.
        limit: u64,
        /// Where the length field is.
        offset: usize,
    },
    /// Extension items longer than the limit.
    #[error("{message} announces {length} bytes of extension items at offset {offset}, over the limit of {limit}")]
    ExtensionsTooLong {
        /// SESS_INIT or XFER_SEGMENT.
        message: &'static str,
        /// The announced length.
        length: u32,
        /// The limit.
        limit: u32,
        /// Where the length field is.
        offset: usize,
    },
    /// An extension item runs past the end of its list.
    #[error("{message} extension item at offset {offset} needs {needed} bytes but only {left} remain in the extension list")]
    ExtensionOverrun {
        /// SESS_INIT or XFER_SEGMENT.
        message: &'static str,
        /// Where the item starts.
        offset: usize,
        /// Bytes the item needs.
        needed: usize,
        /// Bytes left in the list.
        left: usize,
    },
    /// A SESS_INIT node ID longer than the limit.
    #[error("SESS_INIT node ID of {length} bytes at offset {offset}, over the limit of {limit}")]
    NodeIdTooLong {
        /// The announced length.
        length: u16,
        /// The limit.
        limit: u16,
        /// Where the length field is.
        offset: usize,
    },
    /// A SESS_INIT node ID that is not UTF-8 (§4.6: it is a URI).
    #[error("SESS_INIT node ID at offset {offset} is not UTF-8")]
    NodeIdNotUtf8 {
        /// Where the node ID starts.
        offset: usize,
    },
    /// A Transfer Length extension whose value is not a u64 (§5.2.5.1).
    #[error("Transfer Length extension value is {length} bytes, not 8")]
    BadTransferLength {
        /// The value's length.
        length: usize,
    },
    /// The input ended inside a message.
    #[error("input of {length} bytes ends inside a message")]
    Truncated {
        /// Bytes given.
        length: usize,
    },
    /// Bytes follow the message.
    #[error("{extra} bytes follow the message that ends at offset {offset}")]
    TrailingBytes {
        /// Where the message ends.
        offset: usize,
        /// How many bytes follow.
        extra: usize,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A SESS_INIT node ID has a u16 length field.
    #[error("node ID of {length} bytes does not fit SESS_INIT's 16-bit length")]
    NodeIdTooLong {
        /// Its length.
        length: usize,
    },
    /// An extension value has a u16 length field.
    #[error("extension item type {item_type:#06x} has a {length}-byte value; the limit is 65535")]
    ExtensionValueTooLong {
        /// The item type.
        item_type: u16,
        /// Its length.
        length: usize,
    },
    /// Extension lists have a u32 length field.
    #[error("extension items total {length} bytes, over the 32-bit length field")]
    ExtensionsTooLong {
        /// Their total length.
        length: usize,
    },
    /// Only the START segment carries transfer extensions (§5.2.2).
    #[error("transfer extensions go on the START segment only")]
    ExtensionsWithoutStart,
}

/// A cursor over the front of a buffer; every read says "need more" by
/// returning `None` when the bytes are not there yet.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }
}

/// `Ok(None)` from inside a decoding function: wait for more bytes.
macro_rules! need {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

/// Decodes the message at the front of `buf`.
///
/// Returns `Ok(Some((message, used)))` with the number of bytes it took,
/// `Ok(None)` when `buf` holds only the beginning of a message, and an
/// error for input that can never become a valid message. Length fields
/// are checked against `limits` as soon as they are complete, so a hostile
/// length is refused after a few bytes and never allocated.
pub fn decode_message(
    buf: &[u8],
    limits: &DecodeLimits,
) -> Result<Option<(Message, usize)>, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let code = need!(r.u8());
    let message = match code {
        kind::SESS_INIT => {
            let keepalive_secs = need!(r.u16());
            let segment_mru = need!(r.u64());
            let transfer_mru = need!(r.u64());
            let at = r.pos;
            let id_len = need!(r.u16());
            if id_len > limits.max_node_id_len {
                return Err(DecodeError::NodeIdTooLong {
                    length: id_len,
                    limit: limits.max_node_id_len,
                    offset: at,
                });
            }
            let id_at = r.pos;
            let id = need!(r.take(usize::from(id_len)));
            let node_id = std::str::from_utf8(id)
                .map_err(|_| DecodeError::NodeIdNotUtf8 { offset: id_at })?
                .to_string();
            let extensions = need!(read_extensions(&mut r, limits, "SESS_INIT")?);
            Message::SessInit(SessInit {
                keepalive_secs,
                segment_mru,
                transfer_mru,
                node_id,
                extensions,
            })
        }
        kind::SESS_TERM => {
            let flags = need!(r.u8());
            let reason = SessTermReason::from_code(need!(r.u8()));
            Message::SessTerm(SessTerm { flags, reason })
        }
        kind::XFER_SEGMENT => {
            let flags = need!(r.u8());
            let transfer_id = need!(r.u64());
            let extensions = if flags & SEGMENT_START != 0 {
                need!(read_extensions(&mut r, limits, "XFER_SEGMENT")?)
            } else {
                Vec::new()
            };
            let at = r.pos;
            let length = need!(r.u64());
            if length > limits.max_segment_data {
                return Err(DecodeError::SegmentTooLong {
                    length,
                    limit: limits.max_segment_data,
                    offset: at,
                });
            }
            // Bounded by the limit just checked, and the bytes are there.
            let data = need!(usize::try_from(length).ok().and_then(|n| r.take(n))).to_vec();
            Message::XferSegment(XferSegment {
                flags,
                transfer_id,
                extensions,
                data,
            })
        }
        kind::XFER_ACK => {
            let flags = need!(r.u8());
            let transfer_id = need!(r.u64());
            let acknowledged_length = need!(r.u64());
            Message::XferAck(XferAck {
                flags,
                transfer_id,
                acknowledged_length,
            })
        }
        kind::XFER_REFUSE => {
            let reason = RefuseReason::from_code(need!(r.u8()));
            let transfer_id = need!(r.u64());
            Message::XferRefuse(XferRefuse {
                reason,
                transfer_id,
            })
        }
        kind::KEEPALIVE => Message::Keepalive,
        kind::MSG_REJECT => {
            let reason = MsgRejectReason::from_code(need!(r.u8()));
            let rejected_type = need!(r.u8());
            Message::MsgReject(MsgReject {
                reason,
                rejected_type,
            })
        }
        other => {
            return Err(DecodeError::UnknownType {
                code: other,
                offset: 0,
            })
        }
    };
    Ok(Some((message, r.pos)))
}

/// Reads an extension list: u32 total length, then items of flags (u8),
/// type (u16), length (u16) and value. `Ok(None)`: need more bytes.
fn read_extensions(
    r: &mut Reader<'_>,
    limits: &DecodeLimits,
    message: &'static str,
) -> Result<Option<Vec<Extension>>, DecodeError> {
    let at = r.pos;
    let total = need!(r.u32());
    if total > limits.max_extensions_len {
        return Err(DecodeError::ExtensionsTooLong {
            message,
            length: total,
            limit: limits.max_extensions_len,
            offset: at,
        });
    }
    let list_at = r.pos;
    // `total` is bounded by the limit: safe to wait for all of it.
    let list = need!(r.take(total as usize));
    let mut items = Vec::new();
    let mut pos = 0usize;
    while pos < list.len() {
        let left = list.len() - pos;
        if left < 5 {
            return Err(DecodeError::ExtensionOverrun {
                message,
                offset: list_at + pos,
                needed: 5,
                left,
            });
        }
        let flags = list[pos];
        let item_type = u16::from_be_bytes([list[pos + 1], list[pos + 2]]);
        let len = usize::from(u16::from_be_bytes([list[pos + 3], list[pos + 4]]));
        if left - 5 < len {
            return Err(DecodeError::ExtensionOverrun {
                message,
                offset: list_at + pos,
                needed: 5 + len,
                left,
            });
        }
        items.push(Extension {
            flags,
            item_type,
            value: list[pos + 5..pos + 5 + len].to_vec(),
        });
        pos += 5 + len;
    }
    Ok(Some(items))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    #[test]
    fn contact_header_is_magic_version_flags() {
        assert_eq!(ContactHeader::OURS.encode(), *b"dtn!\x04\x00");
        assert_eq!(ContactHeader::decode(b"dt").unwrap(), None);
        assert_eq!(
            ContactHeader::decode(b"dtn!\x04\x01").unwrap(),
            Some(ContactHeader {
                version: 4,
                flags: 1
            })
        );
        assert!(ContactHeader::decode(b"dtn!\x04\x01")
            .unwrap()
            .unwrap()
            .can_tls());
        // Wrong from the first byte: refused at once, not after six.
        let e = ContactHeader::decode(b"GE").unwrap_err();
        assert!(matches!(e, DecodeError::BadMagic { .. }), "{e}");
        assert!(
            e.to_string().contains("47 45") || e.to_string().contains("47, 45"),
            "{e}"
        );
        assert!(ContactHeader::decode(b"dtn?\x04\x00").is_err());
    }

    #[test]
    fn sess_init_wire_layout() {
        let m = Message::SessInit(SessInit {
            keepalive_secs: 30,
            segment_mru: 0x0102,
            transfer_mru: 0x0304,
            node_id: "ipn:1.0".into(),
            extensions: vec![],
        });
        let bytes = m.to_bytes().unwrap();
        let mut want = vec![0x07, 0x00, 0x1e];
        want.extend_from_slice(&0x0102u64.to_be_bytes());
        want.extend_from_slice(&0x0304u64.to_be_bytes());
        want.extend_from_slice(&[0x00, 0x07]);
        want.extend_from_slice(b"ipn:1.0");
        want.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(bytes, want);
        assert_eq!(Message::from_bytes(&bytes, &limits()).unwrap(), m);
    }

    #[test]
    fn segment_wire_layout_with_transfer_length() {
        let m = Message::XferSegment(XferSegment {
            flags: SEGMENT_START,
            transfer_id: 7,
            extensions: vec![Extension::transfer_length(10)],
            data: b"abc".to_vec(),
        });
        let bytes = m.to_bytes().unwrap();
        let mut want = vec![0x01, 0x02];
        want.extend_from_slice(&7u64.to_be_bytes());
        want.extend_from_slice(&13u32.to_be_bytes());
        want.extend_from_slice(&[0x00, 0x00, 0x01, 0x00, 0x08]);
        want.extend_from_slice(&10u64.to_be_bytes());
        want.extend_from_slice(&3u64.to_be_bytes());
        want.extend_from_slice(b"abc");
        assert_eq!(bytes, want);
        let Message::XferSegment(s) = Message::from_bytes(&bytes, &limits()).unwrap() else {
            panic!()
        };
        assert_eq!(s.transfer_length().unwrap(), Some(10));
        // A middle segment has no extension list at all.
        let mid = Message::XferSegment(XferSegment {
            flags: 0,
            transfer_id: 7,
            extensions: vec![],
            data: b"d".to_vec(),
        })
        .to_bytes()
        .unwrap();
        assert_eq!(mid.len(), 1 + 1 + 8 + 8 + 1);
    }

    #[test]
    fn small_messages_wire_layout() {
        let cases: Vec<(Message, Vec<u8>)> = vec![
            (Message::Keepalive, vec![0x04]),
            (
                Message::SessTerm(SessTerm {
                    flags: SESS_TERM_REPLY,
                    reason: SessTermReason::Busy,
                }),
                vec![0x05, 0x01, 0x03],
            ),
            (
                Message::MsgReject(MsgReject {
                    reason: MsgRejectReason::Unexpected,
                    rejected_type: 0x02,
                }),
                vec![0x06, 0x03, 0x02],
            ),
            (
                Message::XferRefuse(XferRefuse {
                    reason: RefuseReason::NotAcceptable,
                    transfer_id: 1,
                }),
                vec![0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
            (
                Message::XferAck(XferAck {
                    flags: SEGMENT_END,
                    transfer_id: 2,
                    acknowledged_length: 3,
                }),
                vec![0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3],
            ),
        ];
        for (m, wire) in cases {
            assert_eq!(m.to_bytes().unwrap(), wire, "{m:?}");
            assert_eq!(Message::from_bytes(&wire, &limits()).unwrap(), m);
        }
    }

    #[test]
    fn reason_codes_follow_rfc_9174_tables() {
        assert_eq!(RefuseReason::NotAcceptable.code(), 0x04);
        assert_eq!(RefuseReason::NoResources.code(), 0x02);
        assert_eq!(RefuseReason::SessionTerminating.code(), 0x06);
        assert_eq!(SessTermReason::ResourceExhaustion.code(), 0x05);
        assert_eq!(MsgRejectReason::TypeUnknown.code(), 0x01);
        for code in 0..=255u8 {
            assert_eq!(RefuseReason::from_code(code).code(), code);
            assert_eq!(SessTermReason::from_code(code).code(), code);
            assert_eq!(MsgRejectReason::from_code(code).code(), code);
        }
    }

    #[test]
    fn hostile_lengths_are_refused_before_the_bytes_arrive() {
        // A segment announcing 2^64-1 bytes: refused from its 18-byte header.
        let mut seg = vec![0x01, 0x00];
        seg.extend_from_slice(&1u64.to_be_bytes());
        seg.extend_from_slice(&u64::MAX.to_be_bytes());
        let e = decode_message(&seg, &limits()).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::SegmentTooLong {
                    length: u64::MAX,
                    offset: 10,
                    ..
                }
            ),
            "{e}"
        );
        // 4 GiB of extensions on a SESS_INIT.
        let mut init = vec![0x07, 0, 0];
        init.extend_from_slice(&[0; 16]);
        init.extend_from_slice(&[0, 1, b'x']);
        init.extend_from_slice(&u32::MAX.to_be_bytes());
        let e = decode_message(&init, &limits()).unwrap_err();
        assert!(matches!(e, DecodeError::ExtensionsTooLong { .. }), "{e}");
        // A node ID over the limit.
        let mut init = vec![0x07, 0, 0];
        init.extend_from_slice(&[0; 16]);
        init.extend_from_slice(&u16::MAX.to_be_bytes());
        let e = decode_message(&init, &limits()).unwrap_err();
        assert!(matches!(e, DecodeError::NodeIdTooLong { .. }), "{e}");
        // An extension item that claims more than its list holds.
        let mut seg = vec![0x01, SEGMENT_START];
        seg.extend_from_slice(&1u64.to_be_bytes());
        seg.extend_from_slice(&6u32.to_be_bytes());
        seg.extend_from_slice(&[0, 0, 1, 0, 200, 0]);
        let e = decode_message(&seg, &limits()).unwrap_err();
        assert!(matches!(e, DecodeError::ExtensionOverrun { .. }), "{e}");
        // Unknown type.
        let e = decode_message(&[0x08], &limits()).unwrap_err();
        assert!(matches!(e, DecodeError::UnknownType { code: 8, .. }), "{e}");
        // Node ID that is not UTF-8.
        let mut init = vec![0x07, 0, 0];
        init.extend_from_slice(&[0; 16]);
        init.extend_from_slice(&[0, 1, 0xff, 0, 0, 0, 0]);
        let e = decode_message(&init, &limits()).unwrap_err();
        assert!(
            matches!(e, DecodeError::NodeIdNotUtf8 { offset: 21 }),
            "{e}"
        );
    }

    #[test]
    fn truncated_and_trailing_input() {
        let wire = Message::Keepalive.to_bytes().unwrap();
        assert!(matches!(
            Message::from_bytes(&[], &limits()),
            Err(DecodeError::Truncated { length: 0 })
        ));
        let mut two = wire.clone();
        two.extend_from_slice(&wire);
        assert!(matches!(
            Message::from_bytes(&two, &limits()),
            Err(DecodeError::TrailingBytes {
                offset: 1,
                extra: 1
            })
        ));
        let bad = Extension {
            flags: 0,
            item_type: 1,
            value: vec![0; 3],
        };
        let seg = XferSegment {
            flags: SEGMENT_START,
            transfer_id: 0,
            extensions: vec![bad],
            data: vec![],
        };
        assert!(matches!(
            seg.transfer_length(),
            Err(DecodeError::BadTransferLength { length: 3 })
        ));
    }

    #[test]
    fn encode_refuses_what_the_format_cannot_carry() {
        let long = Message::SessInit(SessInit {
            keepalive_secs: 0,
            segment_mru: 0,
            transfer_mru: 0,
            node_id: "x".repeat(70_000),
            extensions: vec![],
        });
        let mut out = vec![1, 2, 3];
        assert!(matches!(
            long.encode(&mut out),
            Err(EncodeError::NodeIdTooLong { length: 70_000 })
        ));
        assert_eq!(out, [1, 2, 3], "nothing half-written");
        let ext_on_middle = Message::XferSegment(XferSegment {
            flags: SEGMENT_END,
            transfer_id: 0,
            extensions: vec![Extension::transfer_length(1)],
            data: vec![1],
        });
        assert_eq!(
            ext_on_middle.to_bytes(),
            Err(EncodeError::ExtensionsWithoutStart)
        );
    }

    fn extension() -> impl Strategy<Value = Extension> {
        (
            any::<u8>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
            .prop_map(|(flags, item_type, value)| Extension {
                flags,
                item_type,
                value,
            })
    }

    pub(crate) fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u16>(),
                any::<u64>(),
                any::<u64>(),
                "[a-z]{1,8}:[a-z0-9./]{0,20}",
                proptest::collection::vec(extension(), 0..3)
            )
                .prop_map(|(k, s, t, node_id, extensions)| Message::SessInit(
                    SessInit {
                        keepalive_secs: k,
                        segment_mru: s,
                        transfer_mru: t,
                        node_id,
                        extensions,
                    }
                )),
            (any::<u8>(), any::<u8>()).prop_map(|(flags, r)| Message::SessTerm(SessTerm {
                flags,
                reason: SessTermReason::from_code(r)
            })),
            (
                any::<u8>(),
                any::<u64>(),
                proptest::collection::vec(extension(), 0..3),
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(flags, transfer_id, extensions, data)| {
                    let extensions = if flags & SEGMENT_START != 0 {
                        extensions
                    } else {
                        Vec::new()
                    };
                    Message::XferSegment(XferSegment {
                        flags,
                        transfer_id,
                        extensions,
                        data,
                    })
                }),
            (any::<u8>(), any::<u64>(), any::<u64>()).prop_map(|(flags, id, len)| {
                Message::XferAck(XferAck {
                    flags,
                    transfer_id: id,
                    acknowledged_length: len,
                })
            }),
            (any::<u8>(), any::<u64>()).prop_map(|(r, id)| Message::XferRefuse(XferRefuse {
                reason: RefuseReason::from_code(r),
                transfer_id: id
            })),
            Just(Message::Keepalive),
            (any::<u8>(), any::<u8>()).prop_map(|(r, t)| Message::MsgReject(MsgReject {
                reason: MsgRejectReason::from_code(r),
                rejected_type: t
            })),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(m in message()) {
            let wire = m.to_bytes().unwrap();
            prop_assert_eq!(Message::from_bytes(&wire, &limits()).unwrap(), m);
            // Every proper prefix asks for more; none is an error.
            for cut in 0..wire.len() {
                prop_assert_eq!(decode_message(&wire[..cut], &limits()).unwrap(), None);
            }
        }

        #[test]
        fn a_stream_of_messages_decodes_in_order(ms in proptest::collection::vec(message(), 0..8)) {
            let mut wire = Vec::new();
            for m in &ms {
                m.encode(&mut wire).unwrap();
            }
            let mut got = Vec::new();
            let mut pos = 0;
            while let Some((m, used)) = decode_message(&wire[pos..], &limits()).unwrap() {
                got.push(m);
                pos += used;
            }
            prop_assert_eq!(pos, wire.len());
            prop_assert_eq!(got, ms);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let tight = DecodeLimits { max_segment_data: 64, max_extensions_len: 32, max_node_id_len: 16 };
            let _ = decode_message(&bytes, &tight);
            let _ = decode_message(&bytes, &limits());
            let _ = ContactHeader::decode(&bytes);
            if let Ok(Some((_, used))) = decode_message(&bytes, &tight) {
                prop_assert!(used <= bytes.len());
            }
        }
    }
}
