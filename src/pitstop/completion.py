"""Shell completion scripts: flags, and task names from `pitstop --task-names`.

Install with e.g. `pitstop --completions bash > ~/.local/share/bash-completion/completions/pitstop`,
`pitstop --completions zsh > "${fpath[1]}/_pitstop"`, or
`pitstop --completions fish > ~/.config/fish/completions/pitstop.fish`.
"""

from __future__ import annotations

_FLAGS = (
    "--makefile --task --cwd --profile --env --env-file --allow-private --skip-tasks "
    "--skip-init-end-tasks --no-on-error --list --list-all-steps --print-steps --output-format "
    "--jobs --output --time-summary --quiet --verbose --stop-signal --stop-timeout --watch "
    "--watch-path --poll --no-git-ignore --ignore --exts --debounce --on-busy --why --clear "
    "--postpone --completions --debug --version --help"
)

_BASH = """# bash completion for pitstop
_pitstop() {
    local cur prev
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    case "$prev" in
        -f|--makefile|--env-file|--watch-path) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
        --cwd) COMPREPLY=( $(compgen -d -- "$cur") ); return ;;
        --completions) COMPREPLY=( $(compgen -W "bash zsh fish" -- "$cur") ); return ;;
        --on-busy) COMPREPLY=( $(compgen -W "queue restart ignore" -- "$cur") ); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=( $(compgen -W "FLAGS" -- "$cur") )
    else
        COMPREPLY=( $(compgen -W "$(pitstop --task-names 2>/dev/null)" -- "$cur") )
    fi
}
complete -F _pitstop pitstop
"""

_ZSH = """#compdef pitstop
_pitstop() {
    local -a tasks flags
    flags=(FLAGS)
    tasks=(${(f)"$(pitstop --task-names 2>/dev/null)"})
    if [[ "$PREFIX" == -* ]]; then
        compadd -- $flags
    else
        compadd -- $tasks
    fi
}
compdef _pitstop pitstop
"""

_FISH = """# fish completion for pitstop
complete -c pitstop -f -a '(pitstop --task-names 2>/dev/null)'
"""


def completion_script(shell: str) -> str:
    if shell == "bash":
        return _BASH.replace("FLAGS", _FLAGS)
    if shell == "zsh":
        return _ZSH.replace("FLAGS", _FLAGS)
    flags = "\n".join(
        f"complete -c pitstop -l {flag.removeprefix('--')}" for flag in _FLAGS.split()
    )
    return _FISH + flags + "\n"
