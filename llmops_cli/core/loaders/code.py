"""Source code and configuration files: one Document per file, format "code", with its language."""

from __future__ import annotations

from llmops_cli.core.documents import Document
from llmops_cli.core.loaders.base import SourceFile, TableOptions, make_document
from llmops_cli.core.loaders.reading import read_text

LANGUAGE_BY_SUFFIX: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".scala": "scala",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".cc": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".cs": "csharp",
    ".swift": "swift",
    ".m": "objective-c",
    ".rb": "ruby",
    ".php": "php",
    ".pl": "perl",
    ".lua": "lua",
    ".r": "r",
    ".jl": "julia",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".ps1": "powershell",
    ".sql": "sql",
    ".graphql": "graphql",
    ".proto": "protobuf",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".ini": "ini",
    ".cfg": "ini",
    ".conf": "conf",
    ".xml": "xml",
    ".css": "css",
    ".scss": "scss",
    ".tf": "terraform",
    ".hcl": "hcl",
    ".dockerfile": "dockerfile",
    ".mk": "make",
}

# Well-known files without a telling extension.
LANGUAGE_BY_FILENAME: dict[str, str] = {
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "Makefile": "make",
    "GNUmakefile": "make",
    "Jenkinsfile": "groovy",
    "Vagrantfile": "ruby",
    "Gemfile": "ruby",
    "Rakefile": "ruby",
}


def language_of(sf: SourceFile) -> str:
    return LANGUAGE_BY_FILENAME.get(sf.path.name) or LANGUAGE_BY_SUFFIX.get(sf.path.suffix.lower(), "text")


def load_code(sf: SourceFile, _options: TableOptions) -> list[Document]:
    text = read_text(sf).strip("\n")
    return [make_document(sf, text, "code", extra={"language": language_of(sf)})]
