# fish completion for kubectl-mpo. Load it with:  kubectl-mpo completion fish | source
# or save it as ~/.config/fish/completions/kubectl-mpo.fish. (`kubectl mpo <TAB>` goes
# through kubectl's own completion and the kubectl_complete-mpo helper instead.)
# The candidates come from `kubectl-mpo __complete WORD...`.
function __kubectl_mpo_complete
    set -l words (commandline -opc) (commandline -ct)
    set -l program $words[1]
    set -e words[1]
    set -l out ($program __complete $words 2>/dev/null)
    or return
    set -l directive (string replace -r '^:' '' -- $out[-1])
    set -e out[-1]
    if test (count $out) -eq 0; and test (math "$directive % 8") -lt 4
        __fish_complete_path (commandline -ct)
        return
    end
    # --flag=VALUE: the candidates are bare values; fish replaces the whole token.
    set -l prefix (string match -r -- '^-[^=]*=' (commandline -ct))
    printf "$prefix%s\n" $out
end
complete -c kubectl-mpo -f -a '(__kubectl_mpo_complete)'
