//! Reading profile files: parse, validate, resolve paths relative to the file.

use std::path::{Path, PathBuf};

use super::error::one_line;
use super::{ExternalSut, Profile, ProfileError, Sut, Violation};
use crate::manifests;

/// Profile files are the `*.yaml` / `*.yml` files of a directory.
const PROFILE_EXTENSIONS: [&str; 2] = ["yaml", "yml"];

/// Reads, parses and validates one profile file.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read { path: path.to_owned(), source })?;
    parse_str(&text, path)
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (not recursive), sorted by path.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Profile)>, ProfileError> {
    let read_err = |source| ProfileError::Read { path: dir.to_owned(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_file() && has_profile_extension(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    paths.into_iter().map(|path| load(&path).map(|profile| (path, profile))).collect()
}

/// Parses and validates a profile read from `origin` (used in error messages).
///
/// When `origin` ends in `.yaml`/`.yml`, `name` must equal its stem. A `template` is
/// resolved against `origin`'s directory and must exist.
pub fn parse_str(text: &str, origin: &Path) -> Result<Profile, ProfileError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let mut profile: Profile = serde_path_to_error::deserialize(de).map_err(|err| parse_error(origin, text, &err))?;
    profile.validate().map_err(|v| ProfileError::invalid(origin, v))?;

    if has_profile_extension(origin)
        && let Some(stem) = origin.file_stem().and_then(|s| s.to_str())
        && profile.name != stem
    {
        return Err(ProfileError::invalid(
            origin,
            Violation::new(
                "name",
                format!("the file name without its extension ({stem:?})"),
                format!("{:?}", profile.name),
            ),
        ));
    }

    if let Some(template) = &profile.load_profile.template {
        let resolved = match profile_dir(origin) {
            Some(dir) if template.is_relative() => dir.join(template),
            _ => template.clone(),
        };
        if !resolved.is_file() {
            return Err(ProfileError::invalid(
                origin,
                Violation::new(
                    "loadProfile.template",
                    "an existing manifest template file, relative to the profile's directory",
                    format!("{:?} (no file at {})", template, resolved.display()),
                ),
            ));
        }
        profile.load_profile.template = Some(resolved);
    }
    if let Sut::External(sut) = &mut profile.sut {
        resolve_external_sut(sut, origin)?;
    }
    Ok(profile)
}

/// Paths relative to the profile's directory: the program (when it has a `/`) and the
/// manifests, which must exist and hold Kubernetes objects.
fn resolve_external_sut(sut: &mut ExternalSut, origin: &Path) -> Result<(), ProfileError> {
    let dir = profile_dir(origin).unwrap_or_default();
    let resolve = |p: &Path| if p.is_relative() { dir.join(p) } else { p.to_owned() };
    if let Some(program) = sut.command.first_mut()
        && program.contains('/')
    {
        let resolved = resolve(Path::new(program.as_str()));
        if !resolved.is_file() {
            return Err(ProfileError::invalid(
                origin,
                Violation::new(
                    "sut.command[0]",
                    "an executable file relative to the profile's directory, or a program name looked up on PATH",
                    format!("{program:?} (no file at {})", resolved.display()),
                ),
            ));
        }
        *program = resolved.display().to_string();
    }
    for (i, manifest) in sut.manifests.iter_mut().enumerate() {
        let resolved = resolve(manifest);
        if let Err(e) = manifests::files(&resolved)
            .and_then(|files| files.iter().try_for_each(|f| manifests::read_file(f).map(drop)))
        {
            return Err(ProfileError::invalid(
                origin,
                Violation::new(
                    format!("sut.manifests[{i}]"),
                    "a file or directory of Kubernetes objects (apiVersion, kind, metadata.name), relative to the profile's directory",
                    e,
                ),
            ));
        }
        *manifest = resolved;
    }
    Ok(())
}

/// The profile's directory, absolute: resolved paths must stay right when the effective
/// profile is written elsewhere (the run's output) and loaded again from there.
fn profile_dir(origin: &Path) -> Option<PathBuf> {
    std::path::absolute(origin).ok()?.parent().map(Path::to_path_buf)
}

fn has_profile_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| PROFILE_EXTENSIONS.contains(&e))
}

fn parse_error(origin: &Path, text: &str, err: &serde_path_to_error::Error<serde_yaml_ng::Error>) -> ProfileError {
    // A syntax error leaves unknown segments ("kwok.?"): keep the known prefix.
    let path = err.path().to_string();
    let mut field = path.trim_end_matches(".?").trim_matches(['.', '?']).to_owned();
    let mut message = err.inner().to_string();
    // serde_yaml_ng prefixes its own, coarser path ("loadProfile: unknown field ..."); ours
    // is in `field`. Its messages themselves never start with a space-free word and ": ".
    if let Some((head, rest)) = message.split_once(": ")
        && !head.is_empty()
        && !head.contains(char::is_whitespace)
    {
        message = rest.to_owned();
    }
    // Say serde's Rust type names in YAML terms.
    for (rust, yaml) in SERDE_TYPE_NAMES {
        message = message.replace(&format!("expected {rust} "), &format!("expected {yaml} "));
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            message = format!("{head}expected {yaml}");
        }
    }
    // Point at the missing field itself rather than at the mapping that lacks it.
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((name, tail)) = rest.split_once('`')
    {
        field = if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") };
        message = format!("expected a value, found nothing (required field missing{tail})");
    }
    if field.is_empty() {
        field = "(document)".to_owned();
    }
    // `{` and `}` end a YAML flow collection: `[ctl, --k=${kubeconfig}]` breaks there.
    if message.contains("did not find expected") && text.contains("${") {
        message.push_str(" (quote a value holding ${...} inside [...] or {...}: \"--kubeconfig=${kubeconfig}\")");
    }
    ProfileError::Parse { path: origin.to_owned(), field, message: one_line(&message) }
}

const SERDE_TYPE_NAMES: [(&str, &str); 5] = [
    ("f64", "a number"),
    ("u64", "a non-negative integer"),
    ("u32", "a non-negative integer"),
    ("a sequence", "a list"),
    ("a map", "a mapping"),
];
