//! Host bindings generated from `wit/deepmail.wit`. The `host-view` world
//! exports every stage; each plugin is checked for, and bound to, only the
//! one interface its stage needs.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "host-view",
    additional_derives: [PartialEq, Eq],
});
