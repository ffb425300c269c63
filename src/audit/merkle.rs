//! RFC 6962 §2.1 Merkle tree hashing (as RFC 9162 §2.1): leaves are
//! SHA-256(0x00 || data), interior nodes SHA-256(0x01 || left || right);
//! audit paths (§2.1.1) and consistency proofs (§2.1.2) with the verifiers
//! of RFC 9162 §2.1.3.2 and §2.1.4.2; and the compact range ("frontier")
//! that lets an appender compute the new root without reading old leaves.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// RFC 6962 §2.1: MTH({d(0)}) = SHA-256(0x00 || d(0)).
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new_with_prefix([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

/// RFC 6962 §2.1: SHA-256(0x01 || MTH(left) || MTH(right)).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new_with_prefix([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The largest power of two smaller than `n` (n > 1): RFC 6962's k.
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH(D[n]) over leaf hashes; the empty tree is SHA-256() (§2.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// RFC 6962 §2.1.1 PATH(m, D[n]): the audit path of leaf `index`, from the
/// leaf upwards. `None` when `index` is not in the tree.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    path_into(leaves, index, &mut path);
    Some(path)
}

fn path_into(leaves: &[Hash], m: usize, path: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_into(&leaves[..k], m, path);
        path.push(root(&leaves[k..]));
    } else {
        path_into(&leaves[k..], m - k, path);
        path.push(root(&leaves[..k]));
    }
}

/// RFC 9162 §2.1.3.2: does `path` prove `leaf` at `index` in the tree of
/// `size` leaves whose root is `root`?
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

/// RFC 6962 §2.1.2 PROOF(m, D[n]) for 0 < m <= n.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    if m == 0 || m > leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    subproof(m, leaves, true, &mut proof);
    Some(proof)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            proof.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, proof);
        proof.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root(&leaves[..k]));
    }
}

/// RFC 9162 §2.1.4.2: is the tree (`second`, `second_root`) an extension
/// of (`first`, `first_root`)?
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> bool {
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if first == 0 || first > second || proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    &fr == first_root && &sr == second_root && s == 0
}

/// The compact range of a tree: the roots of its perfect subtrees, left
/// to right, one per set bit of the size (at most 64). Appending a leaf
/// merges equal-sized subtrees like a binary increment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    pub size: u64,
    pub hashes: Vec<Hash>,
}

impl Frontier {
    /// From a stored size and concatenated hashes; `None` if inconsistent.
    pub fn from_parts(size: u64, bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(32) || bytes.len() / 32 != size.count_ones() as usize {
            return None;
        }
        let hashes = bytes
            .chunks_exact(32)
            .map(|c| <Hash>::try_from(c).expect("chunks_exact(32) gives 32 bytes"))
            .collect();
        Some(Self { size, hashes })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut merged = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.hashes.pop().expect("one hash per set bit of the size");
            merged = node_hash(&left, &merged);
            size >>= 1;
        }
        self.hashes.push(merged);
        self.size += 1;
    }

    /// The tree's root: the subtrees folded from the right (§2.1's MTH).
    pub fn root(&self) -> Hash {
        let mut hashes = self.hashes.iter().rev();
        match hashes.next() {
            None => root(&[]),
            Some(last) => hashes.fold(*last, |right, left| node_hash(left, &right)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// certificate-transparency's merkle_tree_test.cc: the 8 test leaves
    /// and the roots of their first n.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn leaves() -> Vec<Hash> {
        LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect()
    }

    #[test]
    fn roots_of_the_rfc6962_test_leaves() {
        let leaves = leaves();
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut frontier = Frontier::default();
        for (n, expected) in ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root(&leaves[..=n])), *expected, "n = {}", n + 1);
            frontier.push(leaves[n]);
            assert_eq!(
                hex::encode(frontier.root()),
                *expected,
                "frontier n = {}",
                n + 1
            );
            let stored = Frontier::from_parts(frontier.size, &frontier.to_bytes()).unwrap();
            assert_eq!(stored, frontier);
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_wrong_one_does_not() {
        let leaves = leaves();
        for n in 1..=leaves.len() {
            let tree = &leaves[..n];
            let r = root(tree);
            for m in 0..n {
                let path = inclusion_proof(tree, m).unwrap();
                assert!(verify_inclusion(&tree[m], m as u64, n as u64, &path, &r));
                let wrong = (m + 1) % n;
                if wrong != m {
                    assert!(!verify_inclusion(
                        &tree[wrong],
                        m as u64,
                        n as u64,
                        &path,
                        &r
                    ));
                }
                assert!(!verify_inclusion(&tree[m], n as u64, n as u64, &path, &r));
            }
        }
        // RFC 6962 §2.1.3's example: the path of d0 in the 7-leaf tree.
        assert_eq!(inclusion_proof(&leaves[..7], 0).unwrap().len(), 3);
        assert_eq!(inclusion_proof(&leaves[..7], 6).unwrap().len(), 2);
    }

    #[test]
    fn every_consistency_proof_verifies() {
        let leaves = leaves();
        for n in 1..=leaves.len() {
            for m in 1..=n {
                let proof = consistency_proof(&leaves[..n], m).unwrap();
                let (a, b) = (root(&leaves[..m]), root(&leaves[..n]));
                assert!(
                    verify_consistency(m as u64, n as u64, &proof, &a, &b),
                    "{m} -> {n}"
                );
                if m < n {
                    assert!(!verify_consistency(m as u64, n as u64, &proof, &b, &b));
                }
            }
        }
        // RFC 6962 §2.1.3: PROOF(3, D[7]) = [c, d, g, l].
        assert_eq!(consistency_proof(&leaves[..7], 3).unwrap().len(), 4);
    }
}
