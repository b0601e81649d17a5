//! Stage plugins (WebAssembly components) as conformance implementations:
//! JSON requests are turned into WIT calls through the deepmail host.

use deepmail_host::types::{
    BibKey, BundleInfo, BundleSpec, CrcType, DecodeMode, DecodeOptions, EncodeOptions, Envelope,
    ForwardPath, Greeting, Message, ReassemblyLimits, ShaVariant, SmtpParam,
};
use deepmail_host::{Codec, Fragmenter, Resolver, StageError};
use serde_json::{json, Map, Value};

use crate::protocol::{Implementation, ImplementationInfo, Request, Response};
use crate::vectors::{hex_bytes, hex_value};

/// Stage plugins under test: any of a codec, a fragmenter and a resolver.
pub struct WasmImplementation {
    codec: Option<Codec>,
    fragmenter: Option<Fragmenter>,
    resolver: Option<Resolver>,
    info: ImplementationInfo,
}

impl WasmImplementation {
    /// Checks the given plugins; a stage without a plugin reports its
    /// operations as unsupported.
    pub fn new(codec: Option<Codec>, fragmenter: Option<Fragmenter>) -> WasmImplementation {
        Self::with_resolver(codec, fragmenter, None)
    }

    /// Like [`WasmImplementation::new`], with a resolver plugin too (its
    /// `dns-answer` half is what the resolver vectors check).
    pub fn with_resolver(
        codec: Option<Codec>,
        fragmenter: Option<Fragmenter>,
        resolver: Option<Resolver>,
    ) -> WasmImplementation {
        let mut names = Vec::new();
        let mut operations = Vec::new();
        if let Some(c) = &codec {
            names.push(format!(
                "{} ({} {})",
                c.info().source,
                c.info().name,
                c.info().version
            ));
            operations.extend(["bsmtp-codec.encode", "bsmtp-codec.decode"].map(String::from));
        }
        if let Some(f) = &fragmenter {
            names.push(format!(
                "{} ({} {})",
                f.info().source,
                f.info().name,
                f.info().version
            ));
            operations.extend(
                [
                    "fragmenter.build",
                    "fragmenter.inspect",
                    "fragmenter.fragment",
                    "fragmenter.reassemble",
                ]
                .map(String::from),
            );
            if f.has_bpsec() {
                operations.push("fragmenter.verify-bib".to_string());
            }
        }
        if let Some(r) = &resolver {
            names.push(format!(
                "{} ({} {})",
                r.info().source,
                r.info().name,
                r.info().version
            ));
            if r.has_dns_answer() {
                operations.push("resolver.parse-answer".to_string());
            }
        }
        let info = ImplementationInfo {
            name: names.join(" + "),
            version: String::new(),
            operations,
            error_classes: true,
            bundle_versions: fragmenter.iter().map(bundle_version).collect(),
        };
        WasmImplementation {
            codec,
            fragmenter,
            resolver,
            info,
        }
    }
}

/// The Bundle Protocol version a fragmenter speaks, as it reports it: the
/// `version` that `inspect` gives for a bundle it built (6 for the BPv6
/// plugin). A fragmenter that cannot build or inspect is taken as BPv7.
pub fn bundle_version(f: &Fragmenter) -> u64 {
    let spec = BundleSpec {
        source: "ipn:1.0".into(),
        destination: "ipn:2.25".into(),
        report_to: "dtn:none".into(),
        creation_time: 815_000_000_000,
        sequence_number: 0,
        lifetime_ms: 3_600_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::None,
        must_not_fragment: false,
    };
    f.build(b"which version?", &spec)
        .and_then(|b| f.inspect(&b))
        .map(|i| i.version)
        .unwrap_or(7)
}

type Out = Result<Value, Response>;

fn bad_input(msg: impl Into<String>) -> Response {
    Response::Error {
        code: "runner-error".into(),
        message: format!("malformed vector input: {}", msg.into()),
    }
}

fn stage(e: StageError) -> Response {
    Response::Error {
        code: e.code,
        message: e.message,
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, Response> {
    v.get(name)
        .ok_or_else(|| bad_input(format!("missing `{name}`")))
}

fn str_field(v: &Value, name: &str) -> Result<String, Response> {
    field(v, name)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| bad_input(format!("`{name}` must be a string")))
}

fn u64_field(v: &Value, name: &str) -> Result<u64, Response> {
    field(v, name)?
        .as_u64()
        .ok_or_else(|| bad_input(format!("`{name}` must be a whole number")))
}

fn bytes_field(v: &Value, name: &str) -> Result<Vec<u8>, Response> {
    hex_bytes(field(v, name)?).map_err(|m| bad_input(m.0))
}

fn params(v: Option<&Value>) -> Result<Vec<SmtpParam>, Response> {
    let Some(Value::Array(items)) = v else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|p| {
            Ok(SmtpParam {
                keyword: str_field(p, "keyword")?,
                value: p.get("value").and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect()
}

fn params_json(params: &[SmtpParam]) -> Value {
    Value::Array(
        params
            .iter()
            .map(|p| json!({"keyword": p.keyword, "value": p.value}))
            .collect(),
    )
}

/// JSON message of the vector format -> WIT message.
pub(crate) fn message_from_json(m: &Value) -> Result<Message, Response> {
    let forward_paths = match m.get("forward_paths") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|f| {
                Ok(ForwardPath {
                    mailbox: str_field(f, "mailbox")?,
                    parameters: params(f.get("parameters"))?,
                })
            })
            .collect::<Result<Vec<_>, Response>>()?,
        _ => Vec::new(),
    };
    Ok(Message {
        envelope: Envelope {
            reverse_path: str_field(m, "reverse_path")?,
            mail_parameters: params(m.get("mail_parameters"))?,
            forward_paths,
        },
        content: bytes_field(m, "content")?,
    })
}

/// WIT message -> JSON message of the vector format.
pub(crate) fn message_to_json(m: &Message) -> Value {
    json!({
        "reverse_path": m.envelope.reverse_path,
        "mail_parameters": params_json(&m.envelope.mail_parameters),
        "forward_paths": m.envelope.forward_paths.iter()
            .map(|f| json!({"mailbox": f.mailbox, "parameters": params_json(&f.parameters)}))
            .collect::<Vec<_>>(),
        "content": hex_value(&m.content),
    })
}

fn crc_from_json(v: Option<&Value>, default: CrcType) -> Result<CrcType, Response> {
    match v.and_then(Value::as_str) {
        None => Ok(default),
        Some("none") => Ok(CrcType::None),
        Some("crc16") => Ok(CrcType::Crc16),
        Some("crc32c") => Ok(CrcType::Crc32c),
        Some(other) => Err(bad_input(format!("unknown crc type `{other}`"))),
    }
}

/// The vector format's name of a CRC type.
pub fn crc_name(c: CrcType) -> &'static str {
    match c {
        CrcType::None => "none",
        CrcType::Crc16 => "crc16",
        CrcType::Crc32c => "crc32c",
    }
}

fn spec_from_json(s: &Value) -> Result<BundleSpec, Response> {
    Ok(BundleSpec {
        source: str_field(s, "source")?,
        destination: str_field(s, "destination")?,
        report_to: s
            .get("report_to")
            .and_then(Value::as_str)
            .unwrap_or("dtn:none")
            .to_string(),
        creation_time: u64_field(s, "creation_time")?,
        sequence_number: s
            .get("sequence_number")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        lifetime_ms: u64_field(s, "lifetime_ms")?,
        crc: crc_from_json(s.get("crc"), CrcType::Crc32c)?,
        block_crc: crc_from_json(s.get("block_crc"), CrcType::None)?,
        must_not_fragment: s
            .get("must_not_fragment")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// WIT bundle info -> JSON, field names as in the vector format.
pub fn bundle_info_json(i: &BundleInfo) -> Value {
    json!({
        "version": i.version,
        "flags": i.flags,
        "is_fragment": i.is_fragment,
        "must_not_fragment": i.must_not_fragment,
        "crc": crc_name(i.crc),
        "destination": i.destination,
        "source": i.source,
        "report_to": i.report_to,
        "creation_time": i.creation_time,
        "sequence_number": i.sequence_number,
        "lifetime_ms": i.lifetime_ms,
        "fragment_offset": i.fragment_offset,
        "total_adu_length": i.total_adu_length,
        "payload_length": i.payload_length,
        "blocks": i.blocks.iter().map(|b| json!({
            "block_type": b.block_type,
            "block_number": b.block_number,
            "flags": b.flags,
            "crc": crc_name(b.crc),
            "data_length": b.data_length,
        })).collect::<Vec<_>>(),
    })
}

impl WasmImplementation {
    fn codec_call(codec: &Codec, request: &Request) -> Out {
        let input = &request.input;
        match request.operation.as_str() {
            "encode" => {
                let messages = match field(input, "messages")? {
                    Value::Array(items) => items
                        .iter()
                        .map(message_from_json)
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err(bad_input("`messages` must be an array")),
                };
                let opts = input.get("options").cloned().unwrap_or(Value::Null);
                let greeting = match opts.get("greeting") {
                    Some(Value::Object(g)) if g.contains_key("helo") => {
                        Greeting::Helo(g["helo"].as_str().unwrap_or_default().to_string())
                    }
                    Some(Value::Object(g)) if g.contains_key("ehlo") => {
                        Greeting::Ehlo(g["ehlo"].as_str().unwrap_or_default().to_string())
                    }
                    _ => Greeting::None,
                };
                let options = EncodeOptions {
                    greeting,
                    quit: opts.get("quit").and_then(Value::as_bool).unwrap_or(false),
                };
                let batch = codec.encode(&messages, &options).map_err(stage)?;
                Ok(json!({"batch": hex_value(&batch)}))
            }
            "decode" => {
                let batch = bytes_field(input, "batch")?;
                let mode = match input.get("mode").and_then(Value::as_str) {
                    Some("lenient") => DecodeMode::Lenient,
                    _ => DecodeMode::Strict,
                };
                let messages = codec
                    .decode(&batch, DecodeOptions { mode })
                    .map_err(stage)?;
                Ok(json!({"messages": messages.iter().map(message_to_json).collect::<Vec<_>>()}))
            }
            other => Err(Response::Unsupported(format!(
                "unknown codec operation `{other}`"
            ))),
        }
    }

    fn fragmenter_call(f: &Fragmenter, request: &Request) -> Out {
        let input = &request.input;
        match request.operation.as_str() {
            "build" => {
                let bundle = f
                    .build(
                        &bytes_field(input, "adu")?,
                        &spec_from_json(field(input, "spec")?)?,
                    )
                    .map_err(stage)?;
                Ok(json!({"bundle": hex_value(&bundle)}))
            }
            "inspect" => Ok(bundle_info_json(
                &f.inspect(&bytes_field(input, "bundle")?).map_err(stage)?,
            )),
            "fragment" => {
                let mtu = u64_field(input, "mtu")?;
                let bundles = if input.get("bundle").is_some() {
                    f.fragment(&bytes_field(input, "bundle")?, mtu)
                } else {
                    f.fragment_adu(
                        &bytes_field(input, "adu")?,
                        &spec_from_json(field(input, "spec")?)?,
                        mtu,
                    )
                }
                .map_err(stage)?;
                Ok(json!({"bundles": bundles.iter().map(|b| hex_value(b)).collect::<Vec<_>>()}))
            }
            "reassemble" => {
                let l = field(input, "limits")?;
                let limits = ReassemblyLimits {
                    max_adu_bytes: u64_field(l, "max_adu_bytes")?,
                    max_pending_bytes: u64_field(l, "max_pending_bytes")?,
                    max_pending_bundles: u32::try_from(u64_field(l, "max_pending_bundles")?)
                        .unwrap_or(u32::MAX),
                };
                let mut session = f.reassembler(limits).map_err(stage)?;
                let mut outcomes = Vec::new();
                let Some(Value::Array(pushes)) = input.get("pushes") else {
                    return Err(bad_input("`pushes` must be an array"));
                };
                for push in pushes {
                    let bundle = bytes_field(push, "bundle")?;
                    let now = u64_field(push, "now")?;
                    outcomes.push(match session.push(&bundle, now) {
                        Ok(None) => json!({"status": "pending"}),
                        Ok(Some(d)) => json!({"status": "adu", "adu": hex_value(&d.adu)}),
                        Err(e) if e.is_plugin_fault() => return Err(stage(e)),
                        Err(e) => json!({"status": "error", "error": e.code, "message": e.message}),
                    });
                }
                let mut out = Map::new();
                out.insert("outcomes".into(), Value::Array(outcomes));
                if let Some(at) = input.get("expire_at").and_then(Value::as_u64) {
                    out.insert(
                        "expired".into(),
                        json!(session.expire(at).map_err(stage)?.len()),
                    );
                }
                out.insert(
                    "pending_bundles".into(),
                    json!(session.pending().map_err(stage)?.bundles),
                );
                Ok(Value::Object(out))
            }
            "verify-bib" => {
                if !f.has_bpsec() {
                    return Err(Response::Unsupported(
                        "this fragmenter does not export deepmail:stages/bpsec".into(),
                    ));
                }
                let Some(Value::Array(list)) = input.get("keys") else {
                    return Err(bad_input("`keys` must be an array"));
                };
                let mut keys = Vec::with_capacity(list.len());
                for k in list {
                    keys.push(BibKey {
                        source: str_field(k, "source")?,
                        key: bytes_field(k, "key")?,
                    });
                }
                let flag = |name: &str| input.get(name).and_then(Value::as_bool).unwrap_or(false);
                let checks = f
                    .verify_bibs(
                        &bytes_field(input, "bundle")?,
                        &keys,
                        flag("require"),
                        flag("lenient"),
                    )
                    .map_err(stage)?;
                let variant = |v: ShaVariant| match v {
                    ShaVariant::HmacSha256 => "hmac-sha256",
                    ShaVariant::HmacSha384 => "hmac-sha384",
                    ShaVariant::HmacSha512 => "hmac-sha512",
                };
                Ok(json!({"bibs": checks.iter().map(|c| json!({
                    "block_number": c.block_number,
                    "source": c.source,
                    "targets": c.targets,
                    "variant": c.variant.map(variant),
                    "scope": c.scope,
                    "verified": c.verified,
                })).collect::<Vec<_>>()}))
            }
            other => Err(Response::Unsupported(format!(
                "unknown fragmenter operation `{other}`"
            ))),
        }
    }
}

impl WasmImplementation {
    fn resolver_call(r: &Resolver, request: &Request) -> Out {
        let input = &request.input;
        if request.operation != "parse-answer" {
            return Err(Response::Unsupported(format!(
                "unknown resolver operation `{}`",
                request.operation
            )));
        }
        let query_id = u16::try_from(u64_field(input, "query_id")?)
            .map_err(|_| bad_input("`query_id` is not a u16"))?;
        let schemes: Vec<String> = match input.get("schemes") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec!["https".to_string()],
        };
        let seed = input
            .get("random_seed")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let response = bytes_field(input, "response")?;
        let hops = r
            .parse_answer(
                &str_field(input, "domain")?,
                query_id,
                &response,
                seed,
                &schemes,
            )
            .ok_or_else(|| {
                Response::Unsupported("the resolver plugin does not export dns-answer".into())
            })?
            .map_err(stage)?;
        Ok(json!({"next_hops": hops.iter().map(|h| json!({
            "uri": h.uri, "priority": h.priority, "weight": h.weight, "ttl": h.ttl, "origin": h.origin,
        })).collect::<Vec<_>>()}))
    }
}

impl Implementation for WasmImplementation {
    fn info(&self) -> &ImplementationInfo {
        &self.info
    }

    fn call(&mut self, request: &Request) -> Response {
        let out = match request.stage.as_str() {
            "bsmtp-codec" => match &self.codec {
                Some(c) => Self::codec_call(c, request),
                None => Err(Response::Unsupported("no codec plugin under test".into())),
            },
            "fragmenter" => match &self.fragmenter {
                Some(f) => Self::fragmenter_call(f, request),
                None => Err(Response::Unsupported(
                    "no fragmenter plugin under test".into(),
                )),
            },
            "resolver" => match &self.resolver {
                Some(r) => Self::resolver_call(r, request),
                None => Err(Response::Unsupported(
                    "no resolver plugin under test".into(),
                )),
            },
            other => Err(Response::Unsupported(format!("unknown stage `{other}`"))),
        };
        match out {
            Ok(v) => Response::Ok(v),
            Err(r) => r,
        }
    }
}
