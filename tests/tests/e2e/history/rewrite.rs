//! Rewrites of a Download or Public answer, as a lying portal makes them.

use mesh_core::portal::store as st;
use serde_json::Value;

/// The update object of `store` in a Download or Public answer.
pub(super) fn update<'a>(v: &'a mut Value, store: &str) -> Option<&'a mut Value> {
    v.get_mut("Updates")?
        .as_array_mut()?
        .iter_mut()
        .find(|u| u["Store"] == store)
}

pub(super) fn entries<'a>(v: &'a mut Value, store: &str) -> Option<&'a mut Vec<Value>> {
    update(v, store)?["Entries"].as_array_mut()
}

/// Replace the envelope of the newest entry of `store`.
pub(super) fn newest_is(v: &mut Value, store: &str, env: &Value) -> bool {
    match entries(v, store).and_then(|e| e.last_mut()) {
        Some(e) => {
            // Whole, as a portal may always send it.
            *e = serde_json::json!({"Index": e["Index"], "Envelope": env});
            true
        }
        None => false,
    }
}

/// Append `env` as the store's next entry (after its `Last`).
pub(super) fn append(v: &mut Value, store: &str, env: &Value) -> bool {
    let Some(u) = update(v, store) else {
        return false;
    };
    let next = u["Last"].as_u64().unwrap_or(0) + 1;
    u["Last"] = next.into();
    match u["Entries"].as_array_mut() {
        Some(e) => {
            e.push(serde_json::json!({"Index": next, "Envelope": env}));
            true
        }
        None => false,
    }
}

/// Change the Delta of the newest access list sent as a change.
pub(super) fn with_delta(v: &mut Value, f: impl FnOnce(&mut Value)) -> bool {
    match entries(v, st::ACCESS).and_then(|e| e.iter_mut().rev().find(|x| x.get("Delta").is_some()))
    {
        Some(e) => {
            f(&mut e["Delta"]);
            true
        }
        None => false,
    }
}

/// Give the newest access list sent as a change a whole envelope too.
pub(super) fn newest_is_also(v: &mut Value, env: &Value) -> bool {
    match entries(v, st::ACCESS).and_then(|e| e.iter_mut().rev().find(|x| x.get("Delta").is_some()))
    {
        Some(e) => {
            e["Envelope"] = env.clone();
            true
        }
        None => false,
    }
}

pub(super) fn drop_newest(v: &mut Value, store: &str) -> bool {
    entries(v, store).and_then(|e| e.pop()).is_some()
}

pub(super) fn swap_two_newest(v: &mut Value, store: &str) -> bool {
    match entries(v, store) {
        Some(e) if e.len() >= 2 => {
            let n = e.len();
            let (i, j) = (e[n - 1]["Index"].clone(), e[n - 2]["Index"].clone());
            e.swap(n - 1, n - 2);
            e[n - 1]["Index"] = i;
            e[n - 2]["Index"] = j;
            true
        }
        _ => false,
    }
}

pub(super) fn say_behind(v: &mut Value, store: &str) -> bool {
    match update(v, store) {
        Some(u) => {
            u["Last"] = 1.into();
            u["Entries"] = Value::Array(Vec::new());
            true
        }
        None => false,
    }
}
