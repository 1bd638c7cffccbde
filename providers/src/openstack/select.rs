//! Pure choices made from a node's config and what the cloud offers: the flavor for a `host`
//! capability, the image for an `os` capability, the security-group rules for an `endpoint`.
//! No IO here, so every rule is tested with plain data.

use serde_json::Value;

pub use crate::units::size_bytes;

/// A version as written (`22.04`), from the planner's `{"version": ..}` form or text/number.
pub fn version_text(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => m.get("version").and_then(version_text),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u64,
    pub ram_mib: u64,
    pub disk_gb: u64,
}

impl Flavor {
    pub fn from_json(v: &Value) -> Option<Flavor> {
        Some(Flavor {
            id: v.get("id")?.as_str()?.to_string(),
            name: v.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
            vcpus: v.get("vcpus").and_then(Value::as_u64).unwrap_or(0),
            ram_mib: v.get("ram").and_then(Value::as_u64).unwrap_or(0),
            disk_gb: v.get("disk").and_then(Value::as_u64).unwrap_or(0),
        })
    }

    pub fn describe(&self) -> String {
        format!("{} ({} vCPU, {} MiB RAM, {} GB disk)", self.name, self.vcpus, self.ram_mib, self.disk_gb)
    }
}

/// What a `host` capability asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostNeeds {
    pub instance_type: Option<String>,
    pub cpus: Option<u64>,
    pub mem_mib: Option<u64>,
    pub disk_gb: Option<u64>,
}

impl HostNeeds {
    pub fn from_config(host: Option<&Value>) -> HostNeeds {
        let Some(h) = host else { return HostNeeds::default() };
        let mib = |b: f64| (b / (1024.0 * 1024.0)).ceil() as u64;
        let gb = |b: f64| (b / 1e9).ceil() as u64;
        HostNeeds {
            instance_type: h.get("instance_type").and_then(Value::as_str).map(str::to_string),
            cpus: h.get("num_cpus").and_then(Value::as_u64),
            mem_mib: h.get("mem_size").and_then(size_bytes).map(mib),
            disk_gb: h.get("disk_size").and_then(size_bytes).map(gb),
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.cpus {
            parts.push(format!("num_cpus {c}"));
        }
        if let Some(m) = self.mem_mib {
            parts.push(format!("mem_size {m} MiB"));
        }
        if let Some(d) = self.disk_gb {
            parts.push(format!("disk_size {d} GB"));
        }
        if parts.is_empty() {
            "no minimum".to_string()
        } else {
            parts.join(", ")
        }
    }

    fn fits(&self, f: &Flavor) -> bool {
        self.cpus.is_none_or(|c| f.vcpus >= c) && self.mem_mib.is_none_or(|m| f.ram_mib >= m) && self.disk_gb.is_none_or(|d| f.disk_gb >= d)
    }
}

/// The flavor named by `instance_type`, else the smallest that fits (fewest vCPUs, then least
/// RAM, then least disk, then name, so the choice is stable).
pub fn choose_flavor<'f>(needs: &HostNeeds, flavors: &'f [Flavor]) -> Result<&'f Flavor, String> {
    if let Some(t) = &needs.instance_type {
        return flavors.iter().find(|f| &f.name == t || &f.id == t).ok_or_else(|| {
            format!("no flavor named `{t}` (instance_type); flavors: {}", names(flavors))
        });
    }
    let mut fitting: Vec<&Flavor> = flavors.iter().filter(|f| needs.fits(f)).collect();
    fitting.sort_by(|a, b| (a.vcpus, a.ram_mib, a.disk_gb, &a.name).cmp(&(b.vcpus, b.ram_mib, b.disk_gb, &b.name)));
    fitting.first().copied().ok_or_else(|| {
        let largest = flavors.iter().max_by_key(|f| (f.vcpus, f.ram_mib, f.disk_gb));
        format!(
            "no flavor fits the host capability ({}); the largest is {}; lower the host properties or name a flavor with instance_type",
            needs.describe(),
            largest.map(Flavor::describe).unwrap_or_else(|| "none: the cloud lists no flavors".to_string())
        )
    })
}

fn names(flavors: &[Flavor]) -> String {
    let mut n: Vec<&str> = flavors.iter().map(|f| f.name.as_str()).collect();
    n.sort();
    n.join(", ")
}

#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub distro: Option<String>,
    pub version: Option<String>,
    pub arch: Option<String>,
    pub created: String,
}

impl Image {
    pub fn from_json(v: &Value) -> Option<Image> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Image {
            id: s("id")?,
            name: s("name").unwrap_or_default(),
            distro: s("os_distro"),
            version: s("os_version"),
            arch: s("architecture"),
            created: s("created_at").unwrap_or_default(),
        })
    }
}

/// What an `os` capability asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OsNeeds {
    pub image: Option<String>,
    pub distribution: Option<String>,
    pub version: Option<String>,
    pub architecture: Option<String>,
}

impl OsNeeds {
    pub fn from_config(os: Option<&Value>) -> OsNeeds {
        let Some(o) = os else { return OsNeeds::default() };
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        OsNeeds {
            image: s("image").map(|i| strip_site_prefix(&i)),
            distribution: s("distribution"),
            version: o.get("version").and_then(version_text),
            architecture: s("architecture"),
        }
    }
}

/// INDIGO writes images as `ost://<keystone host>/<image id>`; the id is what Glance knows.
fn strip_site_prefix(image: &str) -> String {
    match image.strip_prefix("ost://") {
        Some(rest) => rest.rsplit('/').next().unwrap_or(rest).to_string(),
        None => image.to_string(),
    }
}

/// The image named (by id or name) or, without a name, the newest whose `os_distro` and
/// `os_version` match the distribution and version (a version `22` matches `22.04`).
pub fn choose_image<'i>(needs: &OsNeeds, images: &'i [Image]) -> Result<&'i Image, String> {
    if let Some(want) = &needs.image {
        let mut named: Vec<&Image> = images.iter().filter(|i| &i.id == want || &i.name == want).collect();
        named.sort_by(|a, b| b.created.cmp(&a.created));
        return named.first().copied().ok_or_else(|| format!("no image `{want}` (os.image) in Glance; check the name or id"));
    }
    let Some(distro) = &needs.distribution else {
        return Err("the os capability names no image: set its `image` property (name or id), or `distribution` and `version`".to_string());
    };
    let eq = |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
    let mut found: Vec<&Image> = images
        .iter()
        .filter(|i| eq(&i.distro, distro))
        .filter(|i| match &needs.version {
            Some(v) => i.version.as_deref().is_some_and(|iv| iv == v || iv.starts_with(&format!("{v}."))),
            None => true,
        })
        .filter(|i| match &needs.architecture {
            Some(a) => i.arch.is_none() || eq(&i.arch, a),
            None => true,
        })
        .collect();
    found.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
    found.first().copied().ok_or_else(|| {
        let mut offered: Vec<String> = images
            .iter()
            .filter_map(|i| i.distro.as_ref().map(|d| format!("{d} {}", i.version.as_deref().unwrap_or("?"))))
            .collect();
        offered.sort();
        offered.dedup();
        format!(
            "no image has os_distro `{distro}`{} in Glance (images carry: {}); set os.image to a name or id",
            needs.version.as_ref().map(|v| format!(" and os_version {v}")).unwrap_or_default(),
            if offered.is_empty() { "no os_distro properties".to_string() } else { offered.join(", ") }
        )
    })
}

/// One ingress rule of the server's security group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ingress {
    pub protocol: String,
    pub from: u16,
    pub to: u16,
    pub cidr: String,
}

/// Rules from an `endpoint` capability: the normative `port`/`protocol`, and INDIGO's `ports`
/// map of PortSpecs (`source` or `source_range`, `protocol`, `remote_cidr`).
pub fn ingress_rules(endpoint: Option<&Value>) -> Vec<Ingress> {
    let Some(e) = endpoint else { return Vec::new() };
    let mut rules = Vec::new();
    let proto = |v: &Value| v.get("protocol").and_then(Value::as_str).unwrap_or("tcp").to_ascii_lowercase();
    let port = |v: Option<&Value>| v.and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
    if let Some(p) = port(e.get("port")) {
        rules.push(Ingress { protocol: proto(e), from: p, to: p, cidr: "0.0.0.0/0".into() });
    }
    if let Some(Value::Object(ports)) = e.get("ports") {
        for spec in ports.values() {
            let cidr = spec.get("remote_cidr").and_then(Value::as_str).unwrap_or("0.0.0.0/0").to_string();
            let range = spec.get("source_range").and_then(Value::as_array).and_then(|r| Some((port(r.first())?, port(r.get(1))?)));
            let (from, to) = match (port(spec.get("source")), range) {
                (Some(p), _) => (p, p),
                (None, Some(r)) => r,
                (None, None) => continue,
            };
            rules.push(Ingress { protocol: proto(spec), from, to, cidr });
        }
    }
    rules.sort();
    rules.dedup();
    rules
}

/// Whether the endpoint asks for an address reachable from outside the cloud.
pub fn wants_public_address(endpoint: Option<&Value>) -> bool {
    endpoint
        .and_then(|e| e.get("network_name"))
        .and_then(Value::as_str)
        .is_some_and(|n| n.eq_ignore_ascii_case("public"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flavors() -> Vec<Flavor> {
        [("1", "m1.tiny", 1, 128, 1), ("2", "m1.small", 1, 512, 5), ("3", "m1.medium", 2, 1024, 10), ("4", "m1.large", 4, 2048, 20)]
            .iter()
            .map(|(id, n, c, r, d)| Flavor { id: id.to_string(), name: n.to_string(), vcpus: *c, ram_mib: *r, disk_gb: *d })
            .collect()
    }

    fn host(v: Value) -> HostNeeds {
        HostNeeds::from_config(Some(&v))
    }

    #[test]
    fn the_smallest_flavor_that_fits_wins() {
        let f = flavors();
        assert_eq!(choose_flavor(&host(json!({})), &f).unwrap().name, "m1.tiny");
        assert_eq!(choose_flavor(&host(json!({"num_cpus": 1, "mem_size": {"normalized": 300_000_000.0}})), &f).unwrap().name, "m1.small");
        assert_eq!(choose_flavor(&host(json!({"num_cpus": 2})), &f).unwrap().name, "m1.medium");
        assert_eq!(choose_flavor(&host(json!({"num_cpus": 1, "mem_size": "1 GiB"})), &f).unwrap().name, "m1.medium");
        assert_eq!(choose_flavor(&host(json!({"disk_size": "15 GB"})), &f).unwrap().name, "m1.large");
    }

    #[test]
    fn instance_type_names_the_flavor() {
        let f = flavors();
        assert_eq!(choose_flavor(&host(json!({"instance_type": "m1.large", "num_cpus": 1})), &f).unwrap().id, "4");
        let e = choose_flavor(&host(json!({"instance_type": "x1.huge"})), &f).unwrap_err();
        assert_eq!(e, "no flavor named `x1.huge` (instance_type); flavors: m1.large, m1.medium, m1.small, m1.tiny");
    }

    #[test]
    fn no_flavor_fits_says_what_was_asked_and_the_largest() {
        let e = choose_flavor(&host(json!({"num_cpus": 64, "mem_size": "256 GB"})), &flavors()).unwrap_err();
        assert_eq!(
            e,
            "no flavor fits the host capability (num_cpus 64, mem_size 244141 MiB); the largest is m1.large (4 vCPU, 2048 MiB RAM, 20 GB disk); lower the host properties or name a flavor with instance_type"
        );
    }

    fn images() -> Vec<Image> {
        let img = |id: &str, name: &str, d: Option<&str>, v: Option<&str>, c: &str| Image {
            id: id.into(),
            name: name.into(),
            distro: d.map(Into::into),
            version: v.map(Into::into),
            arch: None,
            created: c.into(),
        };
        vec![
            img("a", "cirros-fake", Some("cirros"), Some("0.6.2"), "2026-01-01T00:00:00Z"),
            img("b", "ubuntu-old", Some("ubuntu"), Some("22.04"), "2025-01-01T00:00:00Z"),
            img("c", "ubuntu-fake", Some("ubuntu"), Some("22.04"), "2026-01-01T00:00:00Z"),
            img("d", "plain", None, None, "2026-01-01T00:00:00Z"),
        ]
    }

    fn os(v: Value) -> OsNeeds {
        OsNeeds::from_config(Some(&v))
    }

    #[test]
    fn images_by_name_id_or_distribution_and_version() {
        let i = images();
        assert_eq!(choose_image(&os(json!({"image": "plain"})), &i).unwrap().id, "d");
        assert_eq!(choose_image(&os(json!({"image": "ost://keystone.example.org/b"})), &i).unwrap().id, "b");
        assert_eq!(choose_image(&os(json!({"distribution": "Ubuntu", "version": {"version": "22.04"}})), &i).unwrap().id, "c");
        assert_eq!(choose_image(&os(json!({"distribution": "ubuntu", "version": "22"})), &i).unwrap().id, "c");
        assert_eq!(choose_image(&os(json!({"distribution": "cirros"})), &i).unwrap().id, "a");
    }

    #[test]
    fn unknown_images_are_clear_errors() {
        let i = images();
        assert_eq!(choose_image(&os(json!({"image": "nope"})), &i).unwrap_err(), "no image `nope` (os.image) in Glance; check the name or id");
        assert_eq!(
            choose_image(&os(json!({"distribution": "debian", "version": "12"})), &i).unwrap_err(),
            "no image has os_distro `debian` and os_version 12 in Glance (images carry: cirros 0.6.2, ubuntu 22.04); set os.image to a name or id"
        );
        assert!(choose_image(&os(json!({"type": "linux"})), &i).unwrap_err().starts_with("the os capability names no image"));
    }

    #[test]
    fn endpoint_ports_become_ingress_rules() {
        let e = json!({"port": 22, "protocol": "tcp", "network_name": "PUBLIC", "ports": {
            "http": {"protocol": "tcp", "source": 80},
            "range": {"protocol": "udp", "source_range": [6000, 6010], "remote_cidr": "10.0.0.0/8"},
            "dup": {"source": 22}
        }});
        let r = ingress_rules(Some(&e));
        assert_eq!(
            r,
            vec![
                Ingress { protocol: "tcp".into(), from: 22, to: 22, cidr: "0.0.0.0/0".into() },
                Ingress { protocol: "tcp".into(), from: 80, to: 80, cidr: "0.0.0.0/0".into() },
                Ingress { protocol: "udp".into(), from: 6000, to: 6010, cidr: "10.0.0.0/8".into() },
            ]
        );
        assert!(wants_public_address(Some(&e)));
        assert!(!wants_public_address(Some(&json!({"network_name": "PRIVATE"}))));
    }
}
