//! Links, addresses and routes over rtnetlink. A netlink socket talks to the
//! namespace it was opened in, so each call opens one on a thread inside the
//! namespace and drives it with a small single-threaded runtime.
use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
};

use anyhow::{Context as _, bail};
use futures::TryStreamExt as _;
use netlink_packet_route::link::{LinkAttribute, LinkMessage, LinkXdp, XdpAttached};
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::netns::Netns;

/// Runs `f` with a netlink handle bound to `ns`.
pub fn with_netlink<T, F, Fut>(ns: &Netns, f: F) -> anyhow::Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = anyhow::Result<T>>,
{
    ns.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("tokio runtime")?;
        rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
            let conn = tokio::spawn(conn);
            let r = f(handle).await;
            conn.abort();
            r
        })
    })
}

pub async fn link_by_name(h: &Handle, name: &str) -> anyhow::Result<LinkMessage> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(l),
        Ok(None) => bail!("no link named {name}"),
        Err(e) => Err(e).with_context(|| format!("looking up link {name}")),
    }
}

pub async fn index(h: &Handle, name: &str) -> anyhow::Result<u32> {
    Ok(link_by_name(h, name).await?.header.index)
}

pub async fn set_up(h: &Handle, name: &str) -> anyhow::Result<()> {
    let i = index(h, name).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).up().build())
        .execute()
        .await
        .with_context(|| format!("{name} up"))
}

/// Sets the link administratively up or down.
pub async fn set_state(h: &Handle, name: &str, up: bool) -> anyhow::Result<()> {
    let i = index(h, name).await?;
    let msg = LinkUnspec::new_with_index(i);
    let msg = if up { msg.up() } else { msg.down() };
    h.link()
        .set(msg.build())
        .execute()
        .await
        .with_context(|| format!("{name} {}", if up { "up" } else { "down" }))
}

/// Whether the bridge floods unknown unicast out of `port` (`bridge link set dev PORT flood on|off`).
/// A port's settings go by RTM_NEWLINK (`set_port`): RTM_SETLINK ignores them without an error.
pub async fn set_unicast_flood(h: &Handle, port: &str, flood: bool) -> anyhow::Result<()> {
    let i = index(h, port).await?;
    h.link()
        .set_port(LinkBridgePort::new(i).flood(flood).build())
        .execute()
        .await
        .with_context(|| format!("flood {flood} on bridge port {port}"))
}

pub async fn add_bridge(h: &Handle, name: &str) -> anyhow::Result<()> {
    // STP stays off (the default), so ports forward at once instead of after
    // the 15 s learning delay.
    h.link()
        .add(LinkBridge::new(name).up().build())
        .execute()
        .await
        .with_context(|| format!("adding bridge {name}"))
}

/// A veth pair: `name` stays here, `peer` moves into `peer_ns`.
pub async fn add_veth_to(h: &Handle, name: &str, peer: &str, peer_ns: &Netns) -> anyhow::Result<()> {
    h.link()
        .add(LinkVeth::new(name, peer).build())
        .execute()
        .await
        .with_context(|| format!("adding veth {name}/{peer}"))?;
    let i = index(h, peer).await?;
    h.link()
        .set(
            LinkUnspec::new_with_index(i)
                .setns_by_fd(peer_ns.file().as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .with_context(|| format!("moving {peer} into {}", peer_ns.name()))
}

pub async fn attach_to_bridge(h: &Handle, port: &str, bridge: &str) -> anyhow::Result<()> {
    let br = index(h, bridge).await?;
    let i = index(h, port).await?;
    h.link()
        .set(LinkUnspec::new_with_index(i).controller(br).up().build())
        .execute()
        .await
        .with_context(|| format!("adding {port} to {bridge}"))
}

pub async fn add_address(h: &Handle, link: &str, addr: IpAddr, prefix: u8) -> anyhow::Result<()> {
    let i = index(h, link).await?;
    h.address()
        .add(i, addr, prefix)
        .execute()
        .await
        .with_context(|| format!("adding {addr}/{prefix} to {link}"))
}

pub async fn add_route(h: &Handle, dest: IpAddr, prefix: u8, via: IpAddr) -> anyhow::Result<()> {
    let msg = match (dest, via) {
        (IpAddr::V4(d), IpAddr::V4(g)) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(d, prefix)
            .gateway(g)
            .build(),
        (IpAddr::V6(d), IpAddr::V6(g)) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(d, prefix)
            .gateway(g)
            .build(),
        _ => bail!("route {dest}/{prefix} via {via}: mixed address families"),
    };
    h.route()
        .add(msg)
        .execute()
        .await
        .with_context(|| format!("adding route {dest}/{prefix} via {via}"))
}

/// The gateways of the IPv4 route to exactly `dest/prefix` in the main
/// table: one for a plain route, one per next hop of a multipath route,
/// none when there is no such route.
pub async fn gateways(h: &Handle, dest: Ipv4Addr, prefix: u8) -> anyhow::Result<Vec<Ipv4Addr>> {
    // A dump (no destination in the request), filtered here: a request with
    // a destination would answer with the route that *matches* it, which may
    // be a default route.
    let mut routes = h.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
    let mut found = Vec::new();
    while let Some(r) = routes.try_next().await.context("dumping routes")? {
        let table = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(r.header.table));
        let is_dest = r.header.destination_prefix_length == prefix
            && r.attributes
                .contains(&RouteAttribute::Destination(RouteAddress::Inet(dest)));
        if table != MAIN_TABLE || !is_dest {
            continue;
        }
        let v4 = |attrs: &[RouteAttribute]| {
            attrs
                .iter()
                .filter_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        found.extend(v4(&r.attributes));
        for a in &r.attributes {
            if let RouteAttribute::MultiPath(hops) = a {
                for hop in hops {
                    found.extend(v4(&hop.attributes));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// RT_TABLE_MAIN.
const MAIN_TABLE: u32 = 254;

/// Whether an XDP program (any mode) is attached to the link.
pub async fn xdp_attached(h: &Handle, name: &str) -> anyhow::Result<bool> {
    let link = link_by_name(h, name).await?;
    Ok(link.attributes.iter().any(|a| match a {
        LinkAttribute::Xdp(xdp) => xdp
            .iter()
            .any(|x| matches!(x, LinkXdp::Attached(m) if *m != XdpAttached::None)),
        _ => false,
    }))
}
