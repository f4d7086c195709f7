# POSIX TZ strings ("CET-1CEST,M3.5.0,M10.5.0/3") -> a zone for core.tz (its comment
# says what a zone holds). Parsing is validation: it runs only when a TZ string is new
# (at boot, on a configuration change), then this module is dropped (rare.drop).
_DEFAULT_RULES = "M3.2.0,M11.1.0"  # what glibc assumes when only DST's name is given


class _Reader:
    def __init__(self, text):
        self.text = text
        self.pos = 0

    def peek(self):
        # A slice, not text[pos]: indexing a str interns the character for good.
        return self.text[self.pos:self.pos + 1]

    def take(self, char):
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def number(self, low, high):
        start = self.pos
        while self.peek().isdigit():
            self.pos += 1
        if start == self.pos:
            raise ValueError("number expected at %d" % start)
        value = int(self.text[start:self.pos])
        if not low <= value <= high:
            raise ValueError("%d out of range at %d" % (value, start))
        return value

    def name(self):
        if self.take("<"):
            end = self.text.find(">", self.pos)
            if end < 0:
                raise ValueError("unclosed <")
            value, self.pos = self.text[self.pos:end], end + 1
        else:
            start = self.pos
            while self.peek().isalpha():
                self.pos += 1
            value = self.text[start:self.pos]
        if len(value) < 3:
            raise ValueError("zone name of 3+ characters expected")
        return value

    def clock(self, max_hours):
        """[+|-]hh[:mm[:ss]] in seconds."""
        sign = -1 if self.take("-") else 1
        if sign == 1:
            self.take("+")
        seconds = self.number(0, max_hours) * 3600
        if self.take(":"):
            seconds += self.number(0, 59) * 60
            if self.take(":"):
                seconds += self.number(0, 59)
        return sign * seconds

    def rule(self):
        if self.take("M"):
            month = self.number(1, 12)
            week = self.number(1, 5) if self.take(".") else None
            weekday = self.number(0, 6) if self.take(".") else None
            if week is None or weekday is None:
                raise ValueError("Mm.w.d expected")
            rule = ["M", month, week, weekday]
        elif self.take("J"):
            rule = ["J", self.number(1, 365), 0, 0]
        else:
            rule = ["N", self.number(0, 365), 0, 0]
        rule.append(self.clock(167) if self.take("/") else 7200)
        return tuple(rule)


def parse(text):
    """A zone from a POSIX TZ string; ValueError with the reason when malformed."""
    if not isinstance(text, str) or not text:
        raise ValueError("TZ string expected")
    r = _Reader(text)
    r.name()
    std = -r.clock(24)
    if not r.peek():
        return (std, None, None, None)
    r.name()
    dst = std + 3600 if r.peek() in (",", "") else -r.clock(24)
    if not r.peek():
        r = _Reader(_DEFAULT_RULES)
    elif not r.take(","):
        raise ValueError("',' expected at %d" % r.pos)
    start = r.rule()
    if not r.take(","):
        raise ValueError("end rule expected")
    end = r.rule()
    if r.peek():
        raise ValueError("unexpected %r at %d" % (r.peek(), r.pos))
    return (std, dst, start, end)
