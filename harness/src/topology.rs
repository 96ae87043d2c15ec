//! What a cluster's members are, as etcd sees them. For now: a member's ID, computed as etcd
//! computes it — the first 8 bytes of a SHA-1 over the member's sorted peer URLs and the cluster
//! token — so a scenario need not spell it (the seed's `6702b0a34e2cfd39` is
//! `http://127.0.0.1:2380` with the token `etcd-cluster-0`).

use sha1::{Digest, Sha1};

/// The token the tutorial's units pass as `--initial-cluster-token`.
pub const TUTORIAL_TOKEN: &str = "etcd-cluster-0";

/// The ID etcd gives a member with `peer_urls` in a cluster bootstrapped with `token`, as etcdctl
/// prints it (hex, no padding).
pub fn member_id(peer_urls: &[&str], token: &str) -> String {
    let mut urls = peer_urls.to_vec();
    urls.sort_unstable();
    let mut hash = Sha1::new();
    hash.update(urls.concat().as_bytes());
    hash.update(token.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    format!("{:x}", u64::from_be_bytes(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_the_ones_etcd_printed() {
        // Both measured with etcd 3.4.23 and the tutorial's token.
        assert_eq!(
            member_id(&["http://127.0.0.1:2380"], TUTORIAL_TOKEN),
            "6702b0a34e2cfd39"
        );
        assert_eq!(
            member_id(&["https://127.0.0.1:2380"], TUTORIAL_TOKEN),
            "91d7626d11b5d211"
        );
    }

    #[test]
    fn the_order_of_peer_urls_does_not_matter_and_the_token_does() {
        let a = member_id(&["https://10.240.0.10:2380", "https://127.0.0.1:2380"], "t");
        let b = member_id(&["https://127.0.0.1:2380", "https://10.240.0.10:2380"], "t");
        assert_eq!(a, b);
        assert_ne!(
            a,
            member_id(&["https://127.0.0.1:2380", "https://10.240.0.10:2380"], "u")
        );
    }
}
