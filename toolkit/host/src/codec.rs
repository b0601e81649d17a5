//! The codec stage as the host calls it: a plugin exporting
//! `deepmail:stages/bsmtp-codec`.

use std::sync::Arc;

use crate::bindings::deepmail::stages::types::Message;
use crate::bindings::exports::deepmail::stages::bsmtp_codec::{self, DecodeOptions, EncodeOptions};
use crate::engine::Host;
use crate::error::{LoadError, StageError};
use crate::plugin::{LoadedPlugin, PluginInfo, PluginSource, Stage};

/// A loaded BSMTP codec plugin. Cheap to clone.
#[derive(Clone)]
pub struct Codec {
    plugin: Arc<LoadedPlugin>,
    indices: Arc<bsmtp_codec::GuestIndices>,
}

impl Codec {
    /// Loads `source` as the codec stage.
    pub fn load(host: &Host, source: &PluginSource) -> Result<Codec, LoadError> {
        let plugin = host.load(source, Stage::Codec, None)?;
        let indices =
            bsmtp_codec::GuestIndices::new(plugin.instance_pre()).map_err(|e| LoadError::Link {
                plugin: plugin.label().to_string(),
                detail: format!("{e:#}"),
            })?;
        Ok(Codec {
            plugin,
            indices: Arc::new(indices),
        })
    }

    /// What the plugin is.
    pub fn info(&self) -> &PluginInfo {
        &self.plugin.info
    }

    /// Encodes messages as one BSMTP object.
    pub fn encode(
        &self,
        messages: &[Message],
        options: &EncodeOptions,
    ) -> Result<Vec<u8>, StageError> {
        let result = self.plugin.call(|store, instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_encode(&mut *store, messages, options)
        })?;
        result.map_err(|e| self.stage_error(e))
    }

    /// Decodes a BSMTP object into its messages.
    pub fn decode(&self, batch: &[u8], options: DecodeOptions) -> Result<Vec<Message>, StageError> {
        let result = self.plugin.call(|store, instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_decode(&mut *store, batch, options)
        })?;
        result.map_err(|e| self.stage_error(e))
    }

    fn stage_error(&self, e: crate::bindings::deepmail::stages::types::StageError) -> StageError {
        StageError {
            code: e.code,
            message: e.message,
            offset: e.offset,
            plugin: self.plugin.label().to_string(),
        }
    }
}
