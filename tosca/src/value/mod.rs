//! Placeholder replaced by the values branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Primitive { String, Integer, Float, Boolean, Timestamp, Null, Version, Range, List, Map, ScalarSize, ScalarTime, ScalarFrequency, ScalarBitrate }
impl Primitive {
    pub fn parse(name: &str) -> Option<Primitive> {
        let name = name.strip_prefix("tosca:").unwrap_or(name);
        Some(match name { "string" => Self::String, "integer" => Self::Integer, "float" => Self::Float, "boolean" => Self::Boolean, "timestamp" => Self::Timestamp, "null" => Self::Null, "version" => Self::Version, "range" => Self::Range, "list" => Self::List, "map" => Self::Map, "scalar-unit.size" => Self::ScalarSize, "scalar-unit.time" => Self::ScalarTime, "scalar-unit.frequency" => Self::ScalarFrequency, "scalar-unit.bitrate" => Self::ScalarBitrate, _ => return None })
    }
}
