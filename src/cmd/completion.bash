# bash completion for kubectl-mpo. Load it with:  source <(kubectl-mpo completion bash)
# (`kubectl mpo <TAB>` goes through kubectl's own completion and the
# kubectl_complete-mpo helper instead; see `kubectl mpo completion --help`.)
# The candidates come from `kubectl-mpo __complete WORD...`: one per line, an optional
# tab and description, then a directive line (`:4` = no file names).
_kubectl_mpo_complete() {
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words
    read -ra words <<<"$line"
    [[ -z $line || $line =~ [[:space:]]$ ]] && words+=("")
    local program=${words[0]}
    words=("${words[@]:1}")
    ((${#words[@]})) || words=("")
    local cur=${words[${#words[@]}-1]}
    local out
    out=$("$program" __complete "${words[@]}" 2>/dev/null) || return 0
    local -a lines
    mapfile -t lines <<<"$out"
    local directive=${lines[${#lines[@]}-1]#:}
    unset 'lines[${#lines[@]}-1]'
    # Readline replaces only the text after the last word-break character (= and :
    # by default), so candidates lose what comes before it.
    local keep="" i
    for ((i = ${#cur}; i > 0; i--)); do
        if [[ $COMP_WORDBREAKS == *"${cur:i-1:1}"* ]]; then
            keep=${cur:0:i}
            break
        fi
    done
    COMPREPLY=()
    local candidate
    for candidate in "${lines[@]}"; do
        candidate=${candidate%%$'\t'*}
        [[ -n $candidate ]] && COMPREPLY+=("${candidate#"$keep"}")
    done
    if ((${#COMPREPLY[@]} == 0 && (directive & 4) == 0)); then
        compopt -o default 2>/dev/null
    fi
    return 0
}
complete -F _kubectl_mpo_complete kubectl-mpo
