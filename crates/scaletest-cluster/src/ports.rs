//! The ports one simulated cluster listens on: fixed (`--port-base N` gives a
//! stable layout, as kube mode's declared container ports need) or picked by
//! the kernel (local mode runs many clusters side by side).

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PortError {
    #[error("port {port} ({role}) is busy: choose another --port-base, or omit it to pick free ports")]
    Busy { port: u16, role: &'static str },
    #[error("--port-base {base} leaves no room for {count} ports below 65535")]
    OutOfRange { base: u16, count: u16 },
    #[error(
        "only {found} of {wanted} free {STRIDE}-port ranges between {LOWEST_BASE} and {top}: stop other runs, or lower clusterCount"
    )]
    NoRoom { found: usize, wanted: u32, top: u16 },
    #[error("cannot pick a free port for {role}")]
    Pick {
        role: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Every listener of one simulated cluster. The order is the `--port-base`
/// offset, so it must only ever grow at the end.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    pub apiserver: u16,
    pub kine: u16,
    pub kine_metrics: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
    pub kwok: u16,
    pub supervisor: u16,
    pub node_creator: u16,
    pub pod_shim: u16,
    pub load_driver: u16,
    pub sut: u16,
    /// A second port for a user's controller (health/readiness: `${healthPort}`).
    pub sut_health: u16,
}

const ROLES: [&str; 12] = [
    "kube-apiserver",
    "kine",
    "kine metrics",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "supervisor metrics",
    "node-creator",
    "pod-shim",
    "load-driver",
    "system under test",
    "system under test health",
];

impl Ports {
    fn from_slice(p: &[u16]) -> Self {
        Self {
            apiserver: p[0],
            kine: p[1],
            kine_metrics: p[2],
            controller_manager: p[3],
            scheduler: p[4],
            kwok: p[5],
            supervisor: p[6],
            node_creator: p[7],
            pod_shim: p[8],
            load_driver: p[9],
            sut: p[10],
            sut_health: p[11],
        }
    }

    pub fn all(&self) -> [(&'static str, u16); 12] {
        let p = [
            self.apiserver,
            self.kine,
            self.kine_metrics,
            self.controller_manager,
            self.scheduler,
            self.kwok,
            self.supervisor,
            self.node_creator,
            self.pod_shim,
            self.load_driver,
            self.sut,
            self.sut_health,
        ];
        std::array::from_fn(|i| (ROLES[i], p[i]))
    }

    /// `base, base+1, …`, each checked free on loopback.
    pub fn fixed(base: u16) -> Result<Self, PortError> {
        let count = ROLES.len() as u16;
        if base == 0 || base.checked_add(count).is_none() {
            return Err(PortError::OutOfRange { base, count });
        }
        let ports: Vec<u16> = (0..count).map(|i| base + i).collect();
        for (role, port) in ROLES.iter().zip(&ports) {
            if !is_free(*port) {
                return Err(PortError::Busy { port: *port, role });
            }
        }
        Ok(Self::from_slice(&ports))
    }

    /// Free ports picked by the kernel. All listeners are held until every
    /// port is chosen, so no two roles get the same one.
    pub fn pick() -> Result<Self, PortError> {
        let mut held = Vec::with_capacity(ROLES.len());
        for role in ROLES {
            let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
                .map_err(|source| PortError::Pick { role, source })?;
            held.push(l);
        }
        let ports: Vec<u16> = held.iter().map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0)).collect();
        Ok(Self::from_slice(&ports))
    }
}

/// Ports a cluster's `--port-base` layout spans (with room to grow).
pub const STRIDE: u16 = 16;
/// Lowest port handed out by [`bases`].
const LOWEST_BASE: u16 = 10_000;

/// The start of the kernel's ephemeral range, where outgoing connections take
/// their local ports (32768 unless configured otherwise).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// `count` distinct `--port-base` values for clusters started side by side, each
/// with its whole layout free, below the ephemeral range. Ports the kernel picks
/// (`Ports::pick`) are ephemeral ones: with many clusters an outgoing connection
/// can take one between the pick and its component's bind. `seed` spreads
/// concurrent runners over the range.
pub fn bases(count: u32, seed: u64) -> Result<Vec<u16>, PortError> {
    let top = ephemeral_start().max(LOWEST_BASE + STRIDE);
    let slots = u64::from((top - LOWEST_BASE) / STRIDE);
    let mut out = Vec::with_capacity(count as usize);
    for step in 0..slots {
        if out.len() == count as usize {
            break;
        }
        let base = LOWEST_BASE + ((seed.wrapping_add(step) % slots) as u16) * STRIDE;
        if (0..ROLES.len() as u16).all(|i| is_free(base + i)) {
            out.push(base);
        }
    }
    if out.len() < count as usize {
        return Err(PortError::NoRoom { found: out.len(), wanted: count, top });
    }
    Ok(out)
}

/// True when nothing listens on `port` on loopback or the wildcard address.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
        && TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

#[cfg(test)]
impl Ports {
    /// A fixed layout without checking the ports, for pure builder tests.
    pub fn fixed_unchecked(base: u16) -> Self {
        Self::from_slice(&(0..ROLES.len() as u16).map(|i| base + i).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_distinct_and_free() {
        let p = Ports::pick().unwrap();
        let mut all: Vec<u16> = p.all().iter().map(|(_, p)| *p).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), ROLES.len());
    }

    #[test]
    fn a_busy_port_is_named() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = Ports::fixed(port).unwrap_err();
        assert!(err.to_string().contains(&format!("port {port} (kube-apiserver) is busy")), "{err}");
    }

    #[test]
    fn bases_are_distinct_free_layouts_below_the_ephemeral_range() {
        let b = bases(8, 12_345).unwrap();
        assert_eq!(b.len(), 8);
        let top = ephemeral_start();
        for (i, base) in b.iter().enumerate() {
            assert!(*base >= LOWEST_BASE && base + STRIDE <= top.max(LOWEST_BASE + STRIDE), "{base}");
            assert!(b[i + 1..].iter().all(|o| o.abs_diff(*base) >= STRIDE), "{b:?}");
            assert!(Ports::fixed(*base).is_ok());
        }
        // A busy port moves that layout elsewhere.
        let held = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, b[0] + 3));
        if held.is_ok() {
            assert!(!bases(1, 12_345).unwrap().contains(&b[0]));
        }
    }

    #[test]
    fn base_out_of_range() {
        assert!(matches!(Ports::fixed(65530), Err(PortError::OutOfRange { .. })));
    }
}
