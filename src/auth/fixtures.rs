//! Test-only keys (never trusted anywhere else), made with OpenSSL 3.0:
//!
//! ```text
//! openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl rsa -traditional
//! openssl genpkey -algorithm ed25519
//! ```
//!
//! `n` and `x` are the public parts in base64url (`openssl rsa -modulus`,
//! the last 32 bytes of `openssl pkey -pubout -outform DER`).

use serde_json::{json, Value};

use super::dev::DevIdp;

pub(super) const RSA_PKCS1_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEAh7HDRrh+WERR6s3cTvL9/Y/VVw6/iyVJMYtygDLBaNVjt/yF
w0zn//W9wH2JKCpQw2QOV7OEhAtFy9DSjQc2faMFexconDgp8vx7g6SFl+PddgiJ
n8pmM0nDAxfQTYXVWtibCO5rqcdkrcXYvw6AdqkuNqA+h71TM7O4e7F4v+iP7/IT
y8Xxf82ym3m6vIxiv2McPtQo8vNt9FrIO9oApFw7ayclbRH1BTih+eiUj0qWBcZh
OjZ6A9L30XRNLEJBWpRZlZIKY3nWVLaH86ziXKi+h5T5sWylmqJLBKO5mvlKIssf
486rBaOsUarClWzZVRq+JcNJLAv9M50Pt30kIwIDAQABAoIBABTZOyeihnG0DYyw
vyi3gk7IdVRARS3GjM26nzJomfmBent0+8MGDfSbIoxwvUzD3k98ZWJph/LByKIy
yNGM9NJY5H6vuuLwaNbsnrhF5EDHbJS2EG8nVIyMyL8GPvr/lR21f3Hf2qrl9+dl
0+eG/Ys9yIacGFTCwgXaQdNqG84LCXR9uEq/4FMrrD+yK88eE22ig9RgV3pQI9ZR
tf7Gx1+LDtMVMkb5ce8ee6RRpxsNI7uUZPRaHrO5t+Jz23iYhcMlPu1rK6iXlvYl
7xMBfOrvczsM1BZhvY+m6xi/D4BTEpIi+EhB6K5VSmzCKsy0eaWSz1rKJ62z4WXn
20wpAAECgYEAvgIdwcsUhKpKWDz8GUuOFyhweGFn6xnnTNSLpZWdrAbnLIVJ776M
Ddi9ecJjnKgoWWWBakHVtsiocJmV59QUEuCvEbVM+j3YYcKTebOr7oM7Ba69pbl/
ndgs1uCDZHS/imfoiHH0nYvq7occxjSnCbQ3ZDH35bZJ1Idj3EgJ+KMCgYEAttKH
P+OaopZK9gMkHieFjXYeZkQYr5xhDsphQ1Cfbay3rQv/yQiHtd8L99/b//yVywxm
2XWwjKRO19ujVHxIQdcs0j+96sNg7KDcJKqzh99Z+Nnso1gvPDLjJYFtaTuVeNFj
aVQrP8Y/bxhWEJwuU9j6aZtIEk+iUTzNPPXZXoECgYAdY8Roiln1H0X6mgxAeWBU
Eqw64o4pXktZpfKnvRmzVyoAx+kkzStqpODB6aBwxc3f7gRzhBVjfWwYZpk6T6J/
PQO3UHzEpDZJAMjA5VqtvNyvR1UMQkIMDzj4T6fjLO/Hn8Tm/gFhMRg4put7eP9x
T8/VjqkSffyzg/GdTANG0wKBgA3g13GLJp73B8O7I0/Cskm10ML0omcaWOfVhyKk
CSY7OUpCoe0x35N31iG/9aRuGTTrwRb67ycOBgou2yw7rwSIgBeJzTH4GPB9mZiS
+MP0uZDBgkw4EoXgWwvq0lJtuoAMbR5+zDWwJ/qX/1iNcprc2s2Pgx4Yu3qtQetB
wnmBAoGAT2R14+PO2njzb+xjgdCjt9Hd1uOkVhOsCOf9SOTuGddvF4ncSw1zL/sJ
Gj4v6CTFKRC3PKZRX6qfuC+FNuZVQEb/cT9V+/OMHoJFF7vJGeklsVm0kiMMc73Z
RVY37sy6ubeqv01t7W97O5QXD85BKEZr0LJdEoKdKm9zVaR0Jro=
-----END RSA PRIVATE KEY-----
";

const RSA_N: &str = "h7HDRrh-WERR6s3cTvL9_Y_VVw6_iyVJMYtygDLBaNVjt_yFw0zn__W9wH2JKCpQw2QOV7OEhAtFy9DSjQc2faMFexconDgp8vx7g6SFl-PddgiJn8pmM0nDAxfQTYXVWtibCO5rqcdkrcXYvw6AdqkuNqA-h71TM7O4e7F4v-iP7_ITy8Xxf82ym3m6vIxiv2McPtQo8vNt9FrIO9oApFw7ayclbRH1BTih-eiUj0qWBcZhOjZ6A9L30XRNLEJBWpRZlZIKY3nWVLaH86ziXKi-h5T5sWylmqJLBKO5mvlKIssf486rBaOsUarClWzZVRq-JcNJLAv9M50Pt30kIw";

pub(super) const ED25519_PKCS8_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIFDG/mbGvcuc6LQ7LCLQGI+xvXubHfRcoA6DbBjryqTh
-----END PRIVATE KEY-----
";

const ED25519_X: &str = "Phk71nxcjP3ubJwKgGxmsCiQPG_XKaa-k64Vroafp6c";

pub(super) fn rsa_jwk() -> Value {
    json!({"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": RSA_N, "e": "AQAB"})
}

pub(super) fn ed_jwk() -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": ED25519_X})
}

/// The JWK of a fresh development IdP.
pub(super) fn ec_jwk() -> Value {
    first_key(&DevIdp::generate())
}

pub(super) fn first_key(idp: &DevIdp) -> Value {
    let jwks: Value = serde_json::from_str(&idp.jwks_json()).expect("DevIdp writes JSON");
    jwks["keys"][0].clone()
}

pub(super) fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

pub(super) fn mixed_jwks() -> String {
    jwks(&[ec_jwk(), rsa_jwk(), ed_jwk()])
}
