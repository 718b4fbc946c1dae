# Sourced by the device-check scripts (run from the repository root). find_python NEEDS NAME
# sets $py to the first Python of: $PYTHON; .venv/bin/python; python3 if it runs NEEDS (a line
# of imports); else a new .venv from `make install` (about 2 minutes, needs the network).
find_python() {
    local needs="$1" name="$2"
    if [[ -n "${PYTHON:-}" ]]; then
        py="$PYTHON"
    elif [[ -x .venv/bin/python ]]; then
        py=.venv/bin/python
    elif command -v python3 >/dev/null && python3 -c "$needs" 2>/dev/null; then
        py=python3
    else
        echo "$name: no Python with the project's needs; 'make install' (~2 min)" >&2
        make install >&2
        py=.venv/bin/python
    fi
}
