//! Yaml -> ServiceTemplate.
