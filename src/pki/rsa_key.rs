//! Partial public-key validation of RSA keys (NIST SP 800-56B rev. 2, 6.4.2.2, as OpenSSL 3's
//! `EVP_PKEY_public_check` does it): an odd exponent with 65537 ≤ e < 2^256, an odd modulus
//! with no small prime factor that is neither a prime nor a prime power. A "key" whose modulus
//! is a prime (or a prime power, or has a small factor) gives its private key away to anyone
//! who reads the certificate.
//!
//! Runs on every RSA request before its signature is verified: the exponent bound is also what
//! keeps a review cheap (verification costs grow with the exponent; a 2^2048 one costs
//! milliseconds).
//!
//! The costly step is the test for a prime or prime-power modulus: a modular exponentiation
//! with an exponent as long as the modulus, measured here at 3 ms for 2048 bits, 12 ms for
//! 3072, 20 ms for 4096 and 135 ms for 8192. The admission webhook, which anyone who can reach
//! its port may call with keys made up on the spot, does not run it
//! ([`ADMISSION_STRUCTURE_BITS`]); the approver and the signer run it for every size policy
//! accepts, and verdicts are cached by the modulus's SHA-256, so each key costs it once. The
//! trial division by small primes (about 0.2 ms) is cached the same way.

use std::{collections::HashMap, fmt, sync::Mutex};

use openssl::bn::{BigNum, BigNumContext, BigNumRef};

/// Moduli above this are refused by policy anyway; they skip the costly checks here.
pub const MAX_CHECKED_BITS: i32 = 8192;
/// The largest modulus the admission webhook tests for a prime or prime-power structure: none
/// (see above). Such keys get every other check there, and this one from the approver, which
/// denies them.
pub const ADMISSION_STRUCTURE_BITS: i32 = 0;
/// Verdicts remembered; past this the cache starts over.
const CACHE_ENTRIES: usize = 4096;
/// Trial division by the odd primes below this, as OpenSSL's public check does (it takes the
/// gcd with their product).
const SMALL_PRIME_BOUND: u32 = 752;

/// What is wrong with an RSA public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsaKeyProblem {
    ExponentEven,
    ExponentTooSmall(String),
    ExponentTooLarge {
        bits: i32,
    },
    ModulusEven,
    SmallFactor(u32),
    ModulusPrime,
    ModulusPrimePower,
    /// The structure test itself failed (OpenSSL could not compute): refuse rather than guess.
    Unchecked,
}

impl fmt::Display for RsaKeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExponentEven => f.write_str("its public exponent is even"),
            Self::ExponentTooSmall(e) => {
                write!(f, "its public exponent {e} is below 65537")
            }
            Self::ExponentTooLarge { bits } => write!(
                f,
                "its public exponent has {bits} bits; it must be below 2^256"
            ),
            Self::ModulusEven => f.write_str("its modulus is even"),
            Self::SmallFactor(p) => write!(f, "its modulus has the small prime factor {p}"),
            Self::ModulusPrime => f.write_str(
                "its modulus is a prime, so the private key follows from the public key",
            ),
            Self::ModulusPrimePower => f.write_str(
                "its modulus is a power of a prime, so the private key follows from the public key",
            ),
            Self::Unchecked => f.write_str("its modulus could not be checked"),
        }
    }
}

/// Checks modulus `n` and exponent `e` of an RSA public key; cheap checks first. The prime
/// and prime-power test runs for moduli of up to `structure_bits` bits.
pub fn check(n: &BigNumRef, e: &BigNumRef, structure_bits: i32) -> Result<(), RsaKeyProblem> {
    if !e.is_bit_set(0) {
        return Err(RsaKeyProblem::ExponentEven);
    }
    if e.num_bits() > 256 {
        return Err(RsaKeyProblem::ExponentTooLarge { bits: e.num_bits() });
    }
    if e.num_bits() < 17 {
        // 65537 is the smallest odd number of 17 bits: 2^16 + 1.
        return Err(RsaKeyProblem::ExponentTooSmall(
            e.to_dec_str().map(|s| s.to_string()).unwrap_or_default(),
        ));
    }
    if !n.is_bit_set(0) {
        return Err(RsaKeyProblem::ModulusEven);
    }
    if n.num_bits() > MAX_CHECKED_BITS {
        return Ok(());
    }
    cached_modulus(n, n.num_bits() <= structure_bits)
}

/// A prime factor below [`SMALL_PRIME_BOUND`], if any.
fn small_factor(n: &BigNumRef) -> Result<(), RsaKeyProblem> {
    match small_primes().find(|&p| n.mod_word(p).is_ok_and(|r| r == 0)) {
        Some(p) => Err(RsaKeyProblem::SmallFactor(p)),
        None => Ok(()),
    }
}

/// [`small_factor`], then with `structure` [`fermat_structure`], remembered by the modulus's
/// SHA-256: the approver sees a pending request again whenever Applications change, the
/// apiserver may review one object more than once (a dry run, then the create), and a verdict
/// never changes.
fn cached_modulus(n: &BigNumRef, structure: bool) -> Result<(), RsaKeyProblem> {
    type Verdicts = HashMap<([u8; 32], bool), Result<(), RsaKeyProblem>>;
    static VERDICTS: Mutex<Option<Verdicts>> = Mutex::new(None);
    let key = (openssl::sha::sha256(&n.to_vec()), structure);
    let lock = || {
        VERDICTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(verdict) = lock().as_ref().and_then(|m| m.get(&key)) {
        return verdict.clone();
    }
    // Computed without the lock held: it takes milliseconds.
    let verdict = small_factor(n).and_then(|()| {
        if structure {
            fermat_structure(n)
        } else {
            Ok(())
        }
    });
    let mut cache = lock();
    let map = cache.get_or_insert_with(HashMap::new);
    if map.len() >= CACHE_ENTRIES {
        map.clear();
    }
    map.insert(key, verdict.clone());
    verdict
}

/// One base-2 Fermat step with the factor check of FIPS 186-5's enhanced Miller-Rabin test
/// (B.3.2): x = 2^(n-1) mod n. For a prime n, x = 1. For a prime power p^k, 2^(p-1) ≡ 1 (mod p)
/// and p-1 divides p^k-1, so p divides gcd(x-1, n). For n = pq with distinct primes, x ≠ 1
/// and gcd(x-1, n) = 1 unless the key was built to look otherwise, so that is the only
/// outcome accepted. One modular exponentiation (OpenSSL's own check makes at least one).
fn fermat_structure(n: &BigNumRef) -> Result<(), RsaKeyProblem> {
    let structure = || -> Result<Option<RsaKeyProblem>, openssl::error::ErrorStack> {
        let mut ctx = BigNumContext::new()?;
        let one = BigNum::from_u32(1)?;
        let two = BigNum::from_u32(2)?;
        let mut n_minus_1 = BigNum::new()?;
        n_minus_1.checked_sub(n, &one)?;
        let mut x = BigNum::new()?;
        x.mod_exp(&two, &n_minus_1, n, &mut ctx)?;
        if x == one {
            return Ok(Some(RsaKeyProblem::ModulusPrime));
        }
        let mut x_minus_1 = BigNum::new()?;
        x_minus_1.checked_sub(&x, &one)?;
        let mut g = BigNum::new()?;
        g.gcd(&x_minus_1, n, &mut ctx)?;
        Ok((g != one).then_some(RsaKeyProblem::ModulusPrimePower))
    };
    match super::openssl_check(structure) {
        Ok(None) => Ok(()),
        Ok(Some(problem)) => Err(problem),
        // Arithmetic on an odd modulus does not fail short of memory; refuse rather than
        // certify a key nobody checked.
        Err(_) => Err(RsaKeyProblem::Unchecked),
    }
}

/// The primes below [`SMALL_PRIME_BOUND`].
fn small_primes() -> impl Iterator<Item = u32> {
    (3..SMALL_PRIME_BOUND).step_by(2).filter(|&c| {
        (3..)
            .step_by(2)
            .take_while(|d| d * d <= c)
            .all(|d| c % d != 0)
    })
}

#[cfg(test)]
mod tests {
    use openssl::rsa::Rsa;

    use super::*;

    fn bn(dec: &str) -> BigNum {
        BigNum::from_dec_str(dec).expect("number")
    }

    fn prime(bits: i32) -> BigNum {
        let mut p = BigNum::new().expect("bn");
        p.generate_prime(bits, false, None, None).expect("prime");
        p
    }

    fn product(a: &BigNumRef, b: &BigNumRef) -> BigNum {
        let mut out = BigNum::new().expect("bn");
        out.checked_mul(a, b, &mut BigNumContext::new().expect("ctx"))
            .expect("mul");
        out
    }

    #[test]
    fn a_real_key_passes() {
        let key = Rsa::generate(2048).expect("rsa");
        assert_eq!(check(key.n(), key.e(), MAX_CHECKED_BITS), Ok(()));
    }

    /// Each flaw has its own answer.
    #[test]
    fn each_flaw_is_named() {
        let e = bn("65537");
        let (p, q) = (prime(1024), prime(1024));
        let n = product(&p, &q);
        let three = BigNum::from_u32(3).expect("bn");
        let cases: Vec<(&str, BigNum, BigNum, RsaKeyProblem)> = vec![
            (
                "e = 3",
                n.to_owned().expect("bn"),
                bn("3"),
                RsaKeyProblem::ExponentTooSmall("3".into()),
            ),
            (
                "even e",
                n.to_owned().expect("bn"),
                bn("65538"),
                RsaKeyProblem::ExponentEven,
            ),
            (
                "e of 300 bits",
                n.to_owned().expect("bn"),
                {
                    let mut big = BigNum::new().expect("bn");
                    big.lshift(&BigNum::from_u32(1).expect("bn"), 299)
                        .expect("shift");
                    big.add_word(1).expect("add");
                    big
                },
                RsaKeyProblem::ExponentTooLarge { bits: 300 },
            ),
            (
                "even modulus",
                product(&n, &BigNum::from_u32(2).expect("bn")),
                e.to_owned().expect("bn"),
                RsaKeyProblem::ModulusEven,
            ),
            (
                "small factor",
                product(&p, &three),
                e.to_owned().expect("bn"),
                RsaKeyProblem::SmallFactor(3),
            ),
            (
                "prime modulus",
                prime(2048),
                e.to_owned().expect("bn"),
                RsaKeyProblem::ModulusPrime,
            ),
            (
                "prime square",
                product(&p, &p),
                e.to_owned().expect("bn"),
                RsaKeyProblem::ModulusPrimePower,
            ),
        ];
        let mut messages = Vec::new();
        for (name, n, e, want) in cases {
            let got = check(&n, &e, MAX_CHECKED_BITS);
            assert_eq!(got, Err(want), "{name}");
            messages.push(got.expect_err(name).to_string());
        }
        let count = messages.len();
        messages.sort();
        messages.dedup();
        assert_eq!(messages.len(), count, "distinct messages: {messages:?}");
    }

    #[test]
    fn small_primes_are_the_primes_below_752() {
        let primes: Vec<u32> = small_primes().collect();
        assert_eq!(primes.first(), Some(&3));
        assert_eq!(primes.last(), Some(&751));
        assert_eq!(primes.len(), 132, "the 133 primes up to 751, less 2");
    }

    /// Above the caller's bound the structure test is skipped (the webhook's), below it the
    /// answer is the same from the cache.
    #[test]
    fn the_structure_test_is_bounded_by_the_caller() {
        let e = bn("65537");
        let p = prime(2048);
        assert_eq!(
            check(&p, &e, 1024),
            Ok(()),
            "too large for this caller: skipped"
        );
        assert_eq!(check(&p, &e, 2048), Err(RsaKeyProblem::ModulusPrime));
        assert_eq!(
            check(&p, &e, 2048),
            Err(RsaKeyProblem::ModulusPrime),
            "cached"
        );
    }
}
