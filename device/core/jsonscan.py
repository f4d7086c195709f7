# Picks a few fields out of a JSON document while it streams in, without building
# it: memory goes to the fields kept, not to the document (a Spotify player state
# is some 4 KB of track, album and images, of which the device needs three values).
#
# A field is named by its path: keys joined by dots, "[]" for any element of an
# array ("devices.[].name"); a wanted object or array is kept whole. Subtrees
# that hold no wanted field are skipped without looking at their keys. Strings
# are skipped with find(), so a long body costs a few Python steps per
# structural character, not per byte. A wanted value over its bound refuses the
# document, unless too_long is set: then that value is kept in its place.
import json

from micropython import const

_KEY_MAX = const(64)  # longer keys are never wanted: skipped, not kept
_VALUE_MAX = const(256)  # a wanted scalar longer than this is refused
_SUBTREE_MAX = const(4096)  # and so is a wanted object or array longer than this

# what comes next
_VALUE = const(0)
_KEY = const(1)
_COLON = const(2)
_NEXT = const(3)  # a comma or the end of the container
_END = const(4)  # the document is complete: only whitespace may follow

# inside a token
_STRING = const(1)
_LITERAL = const(2)

_SPACE = b" \t\r\n"
_LITERAL_END = b" \t\r\n,}]"


class Scanner:
    too_long = None

    def __init__(self, fields, item=None, on_item=None, present=()):
        """fields: paths to keep in .found. item: a path ending in "[]"; when one of
        its elements (an object) ends, on_item(record) gets the fields found inside
        it, keyed by their path below it, and .found forgets them. present: paths of
        objects or arrays of which only the presence counts: .found holds True for
        them, and their content is skipped, never kept."""
        self.found = {}
        self.size = 0  # bytes fed
        self._fields = fields
        self._present = present
        self._prefixes = prefixes = {""}
        for path in fields + tuple(p.rpartition(".")[0] for p in present):
            while path:
                prefixes.add(path)
                path = path.rpartition(".")[0]
        self._item = item
        self._on_item = on_item
        self._objects = []  # for each open container: is it an object?
        self._paths = []  # the path of each open container outside ignored subtrees
        self._ignore = 0  # depth inside a subtree that holds no wanted field
        self._path = ""  # of the value expected next
        self._expect = _VALUE
        self._empty = False  # the innermost container has just opened
        self._in = 0  # _STRING or _LITERAL while a token may go on in the next piece
        self._token = None  # the token's bytes so far, when it is kept
        self._key = False  # the string being read is a key
        self._keep = False  # the token being read is a wanted value
        self._escaped = False  # a string's bytes so far end in an escaping backslash
        self._subtree = None  # the text so far of a wanted object or array
        self._subtree_from = 0  # where it goes on in the piece being read
        self._subtree_depth = 0  # the _ignore depth at which it ends

    def feed(self, data, n=None):
        """data: the next piece of the document (bytes or bytearray), of which only the
        first n bytes count (default: all), so that a receive buffer is read in place.
        Raises ValueError on anything that is not JSON."""
        i = 0
        if n is None:
            n = len(data)
        self.size += n
        self._subtree_from = 0
        while i < n:
            if self._in == _STRING:
                i = self._string(data, i, n)
            elif self._in == _LITERAL:
                i = self._literal(data, i, n)
            else:
                i = self._structure(data, i)
        if self._subtree is not None:
            self._keep_subtree(data, n)

    def close(self):
        """The document has ended: returns .found, or raises ValueError unless the
        document was whole."""
        if self._in == _LITERAL and not self._objects:
            self._literal(b" ", 0, 1)  # a document that is a bare number ends here
        if self._expect != _END or self._in:
            raise ValueError("JSON cut short")
        return self.found

    # -- structure ------------------------------------------------------------

    def _structure(self, data, i):
        c = data[i]
        if c in _SPACE:
            return i + 1
        expect = self._expect
        if c == 0x22:  # "
            if expect == _KEY:
                self._begin(_STRING, True, not self._ignore)
            elif expect == _VALUE:
                self._begin(_STRING, False, self._wanted())
            else:
                raise ValueError("unexpected string")
            return i + 1
        if expect == _VALUE:
            if c == 0x7B or c == 0x5B:  # { [
                self._open(c == 0x7B, i)
                return i + 1
            if c in b"-0123456789tfn":
                self._begin(_LITERAL, False, self._wanted())
                return i
        if c == 0x7D or c == 0x5D:  # } ]
            is_object = c == 0x7D
            if not self._objects or self._objects[-1] != is_object:
                raise ValueError("mismatched " + chr(c))
            if expect == _NEXT or (self._empty and expect == (_KEY if is_object else _VALUE)):
                self._close(is_object, data, i)
                return i + 1
        if expect == _NEXT and c == 0x2C:  # ,
            if self._objects[-1]:
                self._expect = _KEY
            else:
                self._expect = _VALUE
                if not self._ignore:
                    self._path = self._paths[-1] + ".[]" if self._paths[-1] else "[]"
            return i + 1
        if expect == _COLON and c == 0x3A:  # :
            self._expect = _VALUE
            return i + 1
        raise ValueError("unexpected " + chr(c))

    def _open(self, is_object, at):
        self._objects.append(is_object)
        if not self._ignore and self._path in self._present:
            self.found[self._path] = True
        if not self._ignore and self._path in self._fields:
            self._subtree = bytearray()
            self._subtree_from = at
            self._subtree_depth = self._ignore
        if self._ignore or self._path not in self._prefixes or self._subtree is not None:
            self._ignore += 1
        else:
            path = self._path
            self._paths.append(path)
            if not is_object:
                self._path = path + ".[]" if path else "[]"
        self._expect = _KEY if is_object else _VALUE
        self._empty = True

    def _close(self, is_object, data, at):
        self._objects.pop()
        if self._ignore:
            self._ignore -= 1
            if self._subtree is not None and self._ignore == self._subtree_depth:
                self._keep_subtree(data, at + 1)
                if self._subtree is not None:
                    self.found[self._path] = json.loads(self._subtree)
                    self._subtree = None
        else:
            path = self._paths.pop()
            if is_object and path == self._item:
                self._emit(path + ".")
            self._path = path
        self._done()

    def _keep_subtree(self, data, end):
        if len(self._subtree) + end - self._subtree_from > _SUBTREE_MAX:
            self._subtree = None  # the rest of it is skipped
            self._too_long()
            return
        self._subtree.extend(data[self._subtree_from:end])
        self._subtree_from = end

    def _done(self):
        self._expect = _NEXT if self._objects else _END
        self._empty = False

    def _emit(self, prefix):
        found = self.found
        record = {}
        for path in list(found):
            if path.startswith(prefix):
                record[path[len(prefix):]] = found.pop(path)
        self._on_item(record)

    # -- tokens ---------------------------------------------------------------

    def _begin(self, kind, is_key, keep):
        """A literal is always read whole, to be checked; a string only when kept."""
        self._in = kind
        self._key = is_key
        self._keep = keep
        self._token = bytearray() if keep or kind == _LITERAL else None
        self._escaped = False
        self._empty = False

    def _wanted(self):
        return not self._ignore and self._path in self._fields

    def _string(self, data, i, n):
        while True:
            end = data.find(b'"', i, n)
            if end < 0:
                self._take(data, i, n)
                self._escaped = _escape_pending(data, i, n, self._escaped)
                return n
            if not _escape_pending(data, i, end, self._escaped):
                break
            self._take(data, i, end + 1)
            i, self._escaped = end + 1, False
        self._take(data, i, end)
        self._in = 0
        token, self._token = self._token, None
        if self._key:
            self._got_key(token)
        else:
            self._got_value(b'"' + token + b'"' if token is not None else None)
        return end + 1

    def _literal(self, data, i, n):
        start = i
        while i < n and data[i] not in _LITERAL_END:
            i += 1
        self._take(data, start, i)
        if i == n:
            return n
        self._in = 0
        token, self._token = self._token, None
        try:
            value = json.loads(token)
        except ValueError:
            raise ValueError("unexpected %r" % bytes(token[:8]))
        if self._keep:
            self.found[self._path] = value
        self._done()
        return i

    def _take(self, data, start, end):
        token = self._token
        if token is None or end <= start:
            return
        if len(token) + end - start > (_KEY_MAX if self._key else _VALUE_MAX):
            if not self._key:
                self._too_long()
            self._token = None  # a key this long names nothing we want
            return
        token.extend(data[start:end])

    def _too_long(self):
        if self.too_long is None or self._in == _LITERAL:
            raise ValueError("value of %s too long" % self._path)
        self.found[self._path] = self.too_long

    def _got_key(self, raw):
        self._expect = _COLON
        if self._ignore:
            return
        if raw is None:
            self._path = "\0"  # a key too long to be wanted
            return
        key = json.loads(b'"' + raw + b'"')
        parent = self._paths[-1]
        self._path = parent + "." + key if parent else key

    def _got_value(self, raw):
        if raw is not None:
            self.found[self._path] = json.loads(raw)
        self._done()


def _escape_pending(data, start, end, escaped):
    """Whether data[start:end], following a string's bytes so far (`escaped`: they
    ended in an escaping backslash), leaves the next byte escaped."""
    run = 0
    i = end - 1
    while i >= start and data[i] == 0x5C:
        run += 1
        i -= 1
    if i < start and escaped:
        run += 1
    return run % 2 == 1
