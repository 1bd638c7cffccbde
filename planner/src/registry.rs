//! Which provider realizes which node: the providers configured for a run and the mapping of
//! node types to provider names (`rosca.toml` `[providers]`; `local` by default).

use providers::{Provider, ResourceSchema};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct Registry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    /// (node type, provider name), most specific first; the first type in a node's chain wins.
    mapping: Vec<(String, String)>,
    default: String,
}

impl Registry {
    pub fn new(default: impl Into<String>) -> Registry {
        Registry { providers: BTreeMap::new(), mapping: Vec::new(), default: default.into() }
    }

    pub fn add(&mut self, name: impl Into<String>, provider: Arc<dyn Provider>) {
        self.providers.insert(name.into(), provider);
    }

    pub fn map_type(&mut self, node_type: impl Into<String>, provider: impl Into<String>) {
        self.mapping.push((node_type.into(), provider.into()));
    }

    /// The provider name for a node with this type chain (most derived type first).
    pub fn provider_name(&self, types: &[String]) -> &str {
        for t in types {
            if let Some((_, p)) = self.mapping.iter().find(|(ty, _)| ty == t) {
                return p;
            }
        }
        &self.default
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    /// The schema entry of `provider` for these types, if the provider realizes them.
    pub fn schema(&self, provider: &str, types: &[String]) -> Option<ResourceSchema> {
        self.providers.get(provider)?.schema().resource_for(types).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }
}
