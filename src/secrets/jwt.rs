//! The anon and service_role API keys: JWTs signed HS256 with the cluster's
//! `jwt_secret`, with the claims Supabase's services read (`role`, which
//! PostgREST turns into `SET ROLE`, `iss`, `iat`, `exp`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long the keys are valid: ten years, as Supabase's own long-lived keys.
pub const LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// The `iss` claim of Supabase's keys.
pub const ISSUER: &str = "supabase";

/// A JWT for `role`, issued at `iat` (seconds since the epoch).
pub fn api_key(role: &str, secret: &str, iat: u64) -> String {
    let header = serde_json::json!({ "alg": "HS256", "typ": "JWT" });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "role": role,
        "iat": iat,
        "exp": iat + LIFETIME_SECS,
    });
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let sig = mac.finalize().into_bytes();
    format!("{signing_input}.{}", B64URL.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_parts_with_the_role_claim() {
        let t = api_key("anon", "s3cret", 1_700_000_000);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["role"], "anon");
        assert_eq!(claims["exp"], 1_700_000_000 + LIFETIME_SECS);
        assert_ne!(api_key("anon", "other", 1_700_000_000), t);
    }
}
