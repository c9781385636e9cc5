//! Health-gated announcement of VIPs to a routing daemon (issue 15): while
//! this node can serve a VIP (the datapath is attached and the frontend's
//! backend has a usable server), a host route to it sits in a kernel routing
//! table the operator names (`--announce-table N`); bird2's `kernel`
//! protocol imports that table and its BGP protocol announces the routes,
//! so the router's ECMP spreads the VIP over the nodes that have it. The
//! agent never speaks BGP: the table is the whole interface, and a stopped
//! agent (or a VIP without servers) is a withdrawn route.
//!
//! A killed agent can't withdraw: its host routes stay in the table. The
//! next agent on the interface takes them as its own (`adopt_left`) and
//! withdraws those it doesn't want, and `--detach` removes them with the
//! datapath, so a node never keeps announcing a VIP it can't serve.
use std::{collections::BTreeSet, net::IpAddr};

use futures::TryStreamExt as _;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{info, warn};

/// The routes this agent put in the table.
pub struct Announcer {
    handle: Handle,
    conn: JoinHandle<()>,
    table: u32,
    ifindex: u32,
    announced: BTreeSet<IpAddr>,
}

impl Announcer {
    pub fn open(table: u32, ifindex: u32) -> anyhow::Result<Announcer> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        Ok(Announcer {
            handle,
            conn: tokio::spawn(conn),
            table,
            ifindex,
            announced: BTreeSet::new(),
        })
    }

    fn route(&self, vip: IpAddr) -> netlink_packet_route::route::RouteMessage {
        // `proto static` and link scope through the LB's interface: a route
        // bird2's kernel protocol takes in with `learn` (it isn't bird2's
        // own), and one the host itself never uses (the table is ours, not
        // `main`).
        match vip {
            IpAddr::V4(v4) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(v4, 32)
                .output_interface(self.ifindex)
                .table_id(self.table)
                .protocol(RouteProtocol::Static)
                .scope(RouteScope::Link)
                .build(),
            IpAddr::V6(v6) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(v6, 128)
                .output_interface(self.ifindex)
                .table_id(self.table)
                .protocol(RouteProtocol::Static)
                .build(),
        }
    }

    /// Takes the host routes that an agent before this one left in the
    /// table, through this interface, as this one's: the next `set`
    /// withdraws those not wanted.
    pub async fn adopt_left(&mut self) {
        // One after the other: a netlink socket runs one dump at a time
        // (a second at once gets EBUSY).
        let dump = |r: RouteMessage| self.handle.route().get(r).execute().try_collect::<Vec<_>>();
        let v4 = dump(RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()).await;
        let v6 = dump(RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()).await;
        for routes in [v4, v6] {
            match routes {
                Ok(routes) => {
                    let left: Vec<IpAddr> = routes.iter().filter_map(|r| self.ours(r)).collect();
                    self.announced.extend(left);
                }
                Err(e) => warn!("announce: reading table {}: {e}", self.table),
            }
        }
        for vip in &self.announced {
            info!("announce: {vip} in table {} was left by an agent before", self.table);
        }
    }

    /// The VIP of a route like the ones `route` makes, in our table.
    fn ours(&self, r: &RouteMessage) -> Option<IpAddr> {
        let attr = |f: &dyn Fn(&RouteAttribute) -> Option<u32>| r.attributes.iter().find_map(f);
        let table = attr(&|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table));
        let oif = attr(&|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        if table != self.table || r.header.protocol != RouteProtocol::Static || oif != Some(self.ifindex) {
            return None;
        }
        let dest = r.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
            _ => None,
        })?;
        let host = if dest.is_ipv4() { 32 } else { 128 };
        (r.header.destination_prefix_length == host).then_some(dest)
    }

    /// Makes the table hold exactly `wanted`.
    pub async fn set(&mut self, wanted: &BTreeSet<IpAddr>) {
        for vip in wanted.difference(&self.announced.clone()) {
            // `replace`: a route a predecessor left (a takeover) is ours now.
            match self.handle.route().add(self.route(*vip)).replace().execute().await {
                Ok(()) => {
                    info!("announce: {vip} in table {}", self.table);
                    self.announced.insert(*vip);
                }
                Err(e) => warn!("announce: adding {vip} to table {}: {e}", self.table),
            }
        }
        for vip in self.announced.difference(wanted).copied().collect::<Vec<_>>() {
            self.withdraw(vip).await;
        }
    }

    async fn withdraw(&mut self, vip: IpAddr) {
        match self.handle.route().del(self.route(vip)).execute().await {
            Ok(()) => info!("announce: {vip} withdrawn from table {}", self.table),
            Err(e) => warn!("announce: withdrawing {vip} from table {}: {e}", self.table),
        }
        self.announced.remove(&vip);
    }

    /// Withdraws every route (the agent stops); how many there were.
    pub async fn withdraw_all(mut self) -> usize {
        let count = self.announced.len();
        for vip in self.announced.clone() {
            self.withdraw(vip).await;
        }
        self.conn.abort();
        count
    }
}

/// Runs an announcer on a watch channel of the VIPs to announce; the task
/// ends when the sender goes, giving the announcer back (its routes still
/// in place: the caller withdraws them, unless a successor took over).
pub fn spawn(mut a: Announcer) -> (watch::Sender<BTreeSet<IpAddr>>, JoinHandle<Announcer>) {
    let (tx, mut rx) = watch::channel(BTreeSet::new());
    let task = tokio::spawn(async move {
        a.adopt_left().await;
        // What an agent before left is settled now, even if nothing is
        // wanted (then no change would come).
        let wanted = rx.borrow_and_update().clone();
        a.set(&wanted).await;
        while rx.changed().await.is_ok() {
            let wanted = rx.borrow_and_update().clone();
            a.set(&wanted).await;
        }
        a
    });
    (tx, task)
}

/// `--detach`: withdraws what a killed agent left announced in `table`
/// through `ifindex`.
pub async fn sweep(table: u32, ifindex: u32) -> anyhow::Result<()> {
    let mut a = Announcer::open(table, ifindex)?;
    a.adopt_left().await;
    a.withdraw_all().await;
    Ok(())
}
