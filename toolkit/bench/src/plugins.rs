//! `deepmail plugins`: every embedded plugin and every one chosen with
//! `--plugin`, loaded to read what it says about itself, with its role
//! (in use, default, available, test only); as JSON rows or a table.

use std::fmt::Write as _;

use deepmail_host::{Codec, Fragmenter, PluginInfo, PluginSource, Stage};
use serde_json::{json, Value};

use crate::{BenchError, Stages};

/// The plugins this binary knows of, each loaded once.
#[derive(Debug, Clone)]
pub struct PluginList {
    rows: Vec<(PluginInfo, Stage, &'static str)>,
}

impl Stages {
    /// Loads every embedded plugin and every `--plugin` path, in that
    /// order, to describe them; the first that does not load is the error.
    pub fn plugin_list(&self) -> Result<PluginList, BenchError> {
        let mut rows = Vec::new();
        for b in deepmail_host::builtin::BUILTINS {
            let source = PluginSource::Builtin(b.name.to_string());
            let role = if self.chosen(b.stage) == Some(&source)
                || (b.default && self.chosen(b.stage).is_none())
            {
                "in use"
            } else if b.default {
                "default"
            } else if b.test_only {
                "test only"
            } else {
                "available"
            };
            rows.push((source, b.stage, role));
        }
        for (stage, source) in self.all_chosen() {
            // A file, or a built-in name this binary does not have for the
            // stage: loaded like the others, so it says why it does not.
            let listed = match source {
                PluginSource::Path(_) => false,
                PluginSource::Builtin(name) => deepmail_host::builtin::BUILTINS
                    .iter()
                    .any(|b| b.name == name && b.stage == *stage),
            };
            if !listed {
                rows.push((source.clone(), *stage, "in use"));
            }
        }
        let mut loaded = Vec::new();
        for (source, stage, role) in rows {
            let host = &self.host;
            let info = match stage {
                Stage::Codec => Codec::load(host, &source).map(|c| c.info().clone()),
                Stage::Resolver => {
                    deepmail_host::Resolver::load(host, &source, vec![]).map(|r| r.info().clone())
                }
                Stage::Sender => deepmail_host::Sender::load(host, &source, vec![], None)
                    .map(|s| s.info().clone()),
                Stage::Policy => {
                    deepmail_host::Policy::load(host, &source, vec![]).map(|p| p.info().clone())
                }
                _ => Fragmenter::load(host, &source).map(|f| f.info().clone()),
            }
            .map_err(|error| BenchError::Describe {
                plugin: source.to_string(),
                source: error,
            })?;
            loaded.push((info, stage, role));
        }
        Ok(PluginList { rows: loaded })
    }
}

impl PluginList {
    /// One JSON object per plugin (`plugins --json`).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|(info, stage, role)| {
                    json!({
                        "source": info.source, "stage": stage.name(), "world": info.world,
                        "interface": info.interface, "name": info.name, "version": info.version,
                        "description": info.description, "size_bytes": info.size_bytes, "role": role,
                    })
                })
                .collect(),
        )
    }

    /// The table, a line per plugin under a header line.
    pub fn table(&self) -> String {
        // Columns as wide as their longest entry (a path given with
        // --plugin can be long).
        let width = |f: &dyn Fn(&PluginInfo) -> usize, min: usize| {
            self.rows
                .iter()
                .map(|(i, _, _)| f(i))
                .max()
                .unwrap_or(0)
                .max(min)
        };
        let (ws, ww) = (
            width(&|i| i.source.len(), "plugin".len()),
            width(&|i| i.world.len(), "world".len()),
        );
        let mut text = format!(
            "{:<ws$} {:<11} {:<ww$} {:<9} {:>9}  {:<9} description\n",
            "plugin", "stage", "world", "version", "bytes", "role"
        );
        for (info, stage, role) in &self.rows {
            let _ = writeln!(
                text,
                "{:<ws$} {:<11} {:<ww$} {:<9} {:>9}  {:<9} {}",
                info.source,
                stage,
                info.world,
                info.version,
                info.size_bytes,
                role,
                info.description
            );
        }
        text
    }
}
