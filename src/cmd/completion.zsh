#compdef kubectl-mpo
# zsh completion for kubectl-mpo. Load it with:  source <(kubectl-mpo completion zsh)
# or save it as _kubectl-mpo in a directory of $fpath. (`kubectl mpo <TAB>` goes
# through kubectl's own completion and the kubectl_complete-mpo helper instead.)
# The candidates come from `kubectl-mpo __complete WORD...`.
_kubectl_mpo() {
    local out directive name description
    local -a lines described
    out=$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    directive=${lines[-1]#:}
    for line in "${(@)lines[1,-2]}"; do
        [[ -n $line ]] || continue
        name=${line%%$'\t'*}
        description=""
        [[ $line == *$'\t'* ]] && description=${line#*$'\t'}
        described+=("${name//:/\\:}${description:+:$description}")
    done
    # --flag=VALUE: the candidates are bare values; the prefix stays as typed.
    [[ ${words[CURRENT]} == -*=* ]] && compset -P '*='
    if (( ${#described} )); then
        _describe -t values 'kubectl-mpo' described
    elif (( (directive & 4) == 0 )); then
        _files
    fi
}
compdef _kubectl_mpo kubectl-mpo
