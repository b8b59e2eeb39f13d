//! Will this binary run on the base image's C library? Read the ELF file's
//! version needs (`SHT_GNU_VERNEED`: the `GLIBC_2.xx` versions its dynamic
//! symbols are bound to) and compare the newest with the base's glibc.

use crate::catalog::compare_versions;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader as _};
use object::{Endianness, FileKind};
use std::cmp::Ordering;
use std::path::Path;

/// What an ELF executable needs from the C library.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ElfNeeds {
    /// `x86_64`, `aarch64`, or the raw e_machine number.
    pub machine: String,
    /// Linked dynamically (has a `PT_INTERP` / dynamic section).
    pub dynamic: bool,
    /// The newest `GLIBC_x.y` version needed, if any (`None` for a static or musl binary).
    pub max_glibc: Option<String>,
    /// Every `GLIBC_*` version needed, sorted.
    pub glibc_versions: Vec<String>,
}

impl ElfNeeds {
    /// Whether the binary can run with glibc `have`.
    pub fn runs_on_glibc(&self, have: &str) -> bool {
        self.max_glibc
            .as_deref()
            .is_none_or(|need| compare_versions(need, have) != Ordering::Greater)
    }

    /// The Docker platform architecture (`amd64`, `arm64`) of the binary, if known.
    pub fn platform_arch(&self) -> Option<&'static str> {
        match self.machine.as_str() {
            "x86_64" => Some("amd64"),
            "aarch64" => Some("arm64"),
            _ => None,
        }
    }
}

/// Read an ELF file's glibc needs. Errors are messages (the caller names the file).
pub fn elf_needs(path: &Path) -> Result<ElfNeeds, String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    match FileKind::parse(&*data).map_err(|e| format!("not an executable: {e}"))? {
        FileKind::Elf64 => needs::<elf::FileHeader64<Endianness>>(&data),
        FileKind::Elf32 => needs::<elf::FileHeader32<Endianness>>(&data),
        other => Err(format!("not an ELF executable (a {other:?} file)")),
    }
}

fn needs<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfNeeds, String> {
    let header = H::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let machine = match header.e_machine(endian) {
        elf::EM_X86_64 => "x86_64".to_string(),
        elf::EM_AARCH64 => "aarch64".to_string(),
        m => format!("e_machine {m}"),
    };
    let sections = header.sections(endian, data).map_err(|e| e.to_string())?;
    let dynamic = sections.iter().any(|s| s.sh_type(endian) == elf::SHT_DYNAMIC);
    let mut versions = Vec::new();
    if let Some((mut iter, link)) = sections.gnu_verneed(endian, data).map_err(|e| e.to_string())? {
        let strings = sections.strings(endian, data, link).map_err(|e| e.to_string())?;
        while let Some((_need, mut aux)) = iter.next().map_err(|e| e.to_string())? {
            while let Some(a) = aux.next().map_err(|e| e.to_string())? {
                let name = a.name(endian, strings).map_err(|e| e.to_string())?;
                let name = String::from_utf8_lossy(name);
                if let Some(v) = name.strip_prefix("GLIBC_")
                    && v.starts_with(|c: char| c.is_ascii_digit())
                {
                    versions.push(v.to_string());
                }
            }
        }
    }
    versions.sort_by(|a, b| compare_versions(a, b));
    versions.dedup();
    Ok(ElfNeeds {
        machine,
        dynamic,
        max_glibc: versions.last().cloned(),
        glibc_versions: versions,
    })
}
