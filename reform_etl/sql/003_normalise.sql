-- Value normalisation of SPEC §3, in the database, so that a file of millions of rows is
-- normalised at set speed. Each raw.norm_* returns the normalised text, or the text as it
-- arrived when it cannot be read (validation then names the problem).
--
-- Shape, for speed: raw.norm_<x>(v) is a plain SQL expression (inlined by the planner) that
-- passes values already in canonical ASCII form straight through with one regex test; anything
-- else goes to raw.norm_<x>_slow(v), plpgsql, which evaluates its argument once.

create or replace function raw.norm_text_slow(v text) returns text
language plpgsql immutable parallel safe as $$
begin
  return nullif(btrim(normalize(v, NFC), E' \t\r\n\u00a0\u202f\u2009'), '');
end $$;

-- The text with every space taken out, inside as well as around ('1 296', 'H 44.07'): a count, a decimal
-- and a unit code are read from it. A SQL expression, so the plpgsql functions that call it inline it.
create or replace function raw.without_spaces(t text) returns text
language sql immutable parallel safe as $$
  select regexp_replace(t, E'[\\s\u00a0\u202f\u2009]+', '', 'g')
$$;

-- Trimmed NFC text, blank -> null.
create or replace function raw.norm_text(v text) returns text
language sql immutable parallel safe as $$
  -- ASCII (as many bytes as characters) with nothing to trim is already normalised.
  select case when octet_length(v) = char_length(v) and btrim(v, E' \t\r\n') = v and v <> '' then v
              else raw.norm_text_slow(v) end
$$;

create or replace function raw.norm_count_slow(v text) returns text
language plpgsql immutable parallel safe as $$
declare
  t text := raw.norm_text_slow(v);
  c text := raw.without_spaces(t);
begin
  if t is null then return null; end if;
  if c ~ '^\+?[0-9]+$' then return ltrim(c, '+')::numeric::text; end if;
  if c ~ '^[0-9]{1,3}([.,])[0-9]{3}(\1[0-9]{3})*$' then return translate(c, '.,', '')::numeric::text; end if;
  if c ~ '^\+?[0-9]+[.,]0+$' then return split_part(translate(ltrim(c, '+'), ',', '.'), '.', 1)::numeric::text; end if;
  return t;
end $$;

-- '1.296', '1,296', '1 296', '1296.0' -> '1296'; '-5', '1,5', 'abc' stay as they arrived.
create or replace function raw.norm_count(v text) returns text
language sql immutable parallel safe as $$
  -- translate() strips the digits: cheaper than a regex on every value of a large file.
  select case when translate(v, '0123456789', '') = '' and char_length(v) between 1 and 18
                   and (left(v, 1) <> '0' or v = '0') then v
              else raw.norm_count_slow(v) end
$$;

create or replace function raw.norm_decimal_slow(v text) returns text
language plpgsql immutable parallel safe as $$
declare
  t text := raw.norm_text_slow(v);
  c text := raw.without_spaces(t);
begin
  if t is null then return null; end if;
  if c ~ '\.' and c ~ ',[0-9]*$' then
    c := replace(replace(c, '.', ''), ',', '.');          -- 1.234,5
  elsif c ~ ',' and c ~ '\.[0-9]*$' then
    c := replace(c, ',', '');                             -- 1,234.5
  elsif c ~ '^[^,]*,[^,]*$' then
    c := replace(c, ',', '.');                            -- 2,5
  end if;
  if c ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$' then return trim_scale(c::numeric)::text; end if;
  return t;
end $$;

-- Decimal comma or point: '2,5' -> '2.5'; '1.234,5' -> '1234.5'; trailing zeros dropped.
create or replace function raw.norm_decimal(v text) returns text
language sql immutable parallel safe as $$
  select case when translate(v, '0123456789', '') in ('', '.') and char_length(v) between 1 and 18
                   and left(v, 1) <> '.' and right(v, 1) <> '.'
              then trim_scale(v::numeric)::text
              else raw.norm_decimal_slow(v) end
$$;

create or replace function raw.norm_year_slow(v text) returns text
language plpgsql immutable parallel safe as $$
declare
  t text := raw.norm_text_slow(v);
begin
  return coalesce((regexp_match(lower(t), '^(?:năm|nam)?\s*([0-9]{4})(?:[.,]0+)?$'))[1], t);
end $$;

-- '2021', 'Năm 2021', '2021.0' -> '2021'.
create or replace function raw.norm_year(v text) returns text
language sql immutable parallel safe as $$
  select case when char_length(v) = 4 and translate(v, '0123456789', '') = '' then v
              else raw.norm_year_slow(v) end
$$;

create or replace function raw.norm_period_slow(v text) returns text
language plpgsql immutable parallel safe as $$
declare
  t text := raw.norm_text_slow(v);
  m text[];
begin
  if t is null then return null; end if;
  -- month first: '03/2021', 'Tháng 3/2021', 'T3/2021', 'tháng 3 năm 2021'
  m := regexp_match(lower(t), '^(?:tháng|thang|t)?\s*([0-9]{1,2})\s*(?:[-/.]|\s)\s*(?:năm|nam)?\s*([0-9]{4})$');
  if m is not null and m[1]::int between 1 and 12 then return m[2] || '-' || lpad(m[1]::int::text, 2, '0'); end if;
  -- year first: '2021-03', '2021/3', a date '2021-03-01' or date-time
  m := regexp_match(t, '^([0-9]{4})\s*[-/.]\s*([0-9]{1,2})(?:\s*[-/.]\s*[0-9]{1,2}(?:[T ][0-9:.]+)?)?$');
  if m is not null and m[2]::int between 1 and 12 then return m[1] || '-' || lpad(m[2]::int::text, 2, '0'); end if;
  return t;
end $$;

-- '2021-03', '03/2021', 'Tháng 3/2021', 'T3/2021', 'tháng 3 năm 2021', '2021-03-01' -> '2021-03'.
create or replace function raw.norm_period(v text) returns text
language sql immutable parallel safe as $$
  select case when char_length(v) = 7 and translate(v, '0123456789', '') = '-' and substr(v, 5, 1) = '-'
                   and substr(v, 6, 2) between '01' and '12' then v
              else raw.norm_period_slow(v) end
$$;

create or replace function raw.norm_date_slow(v text) returns text
language plpgsql immutable parallel safe as $$
declare
  t text := raw.norm_text_slow(v);
  m text[];
  d date;
begin
  if t is null then return null; end if;
  if t ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' then return t; end if;
  if t ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?(\.[0-9]+)?$' then
    return left(t, 10) || 'T' || substr(t, 12, 5) || ':' || coalesce(nullif(substr(t, 18, 2), ''), '00');
  end if;
  -- With a UTC offset ('Z', '+07:00', '-0500'): the same moment on Vietnam's clock, which every other
  -- date of a submission is read in.
  if t ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)? ?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$'
     and pg_input_is_valid(t, 'timestamptz') then
    return to_char(t::timestamptz at time zone 'Asia/Ho_Chi_Minh', 'YYYY-MM-DD"T"HH24:MI:SS');
  end if;
  m := regexp_match(t, '^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})(?:\s+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?$');
  if m is null then return t; end if;
  begin
    d := make_date(m[3]::int, m[2]::int, m[1]::int);
  exception when others then
    return t;  -- 31/02/2026: not a calendar date, kept as it arrived
  end;
  -- to_char, not d::text: the cast would follow the session's DateStyle ('13/09/2026' under SQL, DMY)
  if m[4] is null then return to_char(d, 'YYYY-MM-DD'); end if;
  return to_char(d, 'YYYY-MM-DD') || 'T' || lpad(m[4], 2, '0') || ':' || m[5] || ':' || coalesce(m[6], '00');
end $$;

-- ISO date or date-time out: '2026-01-05', '2026-01-05 08:30' -> '2026-01-05T08:30:00', '05/01/2026'.
-- A date-time at midnight stays one ('2026-01-05T00:00:00', as many exports write a date): staging reads
-- it as the same moment as the date, and a file of them needs no rewrite (the client's line scan proves
-- it canonical; rewriting every row of a large one cost more than its COPY).
-- The fast path tests the shape with LIKE (bytes, no function per character): three date columns
-- of a record-level file make this the hottest function of a load. ASCII only (octet length =
-- the 10 or 19 characters of the pattern), digits at both ends (nothing to trim); a value of that
-- shape that is no date ('2026-1x-01') passes through exactly as the slow path would pass it, and
-- validation (audit.try_date) reports it.
create or replace function raw.norm_date(v text) returns text
language sql immutable parallel safe as $$
  select case
    when octet_length(v) = 10 and v like '____-__-__'
         and ascii(v) between 48 and 57 and ascii(right(v, 1)) between 48 and 57 then v
    when octet_length(v) = 19 and v like '____-__-__T__:__:__'
         and ascii(v) between 48 and 57 and ascii(right(v, 1)) between 48 and 57 then v
    else raw.norm_date_slow(v)
  end
$$;

-- Whether a raw date cell names a real day, or a real day and time of day, in the form norm_date writes
-- for every date it can read: 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MI:SS'. PostgreSQL's own timestamp input
-- decides the calendar and the clock ('2026-02-29', '25:00:00' and '10:61:00' are not), and the value
-- must print back as itself: that input also reads what is no canonical date ('2026-09-1 T10:00:00',
-- '+026-09-01', a time zone letter), which the round trip refuses. Exact, yet cheap enough for every
-- cell of a record-level file (no regular expression), and the same whatever the session's DateStyle
-- (to_char with a fixed pattern; ISO input is read year first under every DateStyle). Validation
-- (rules.py) and staging (dbt macro to_timestamp_local) both read dates through it, so a date that
-- passes validation is one staging can read, and one it cannot is a finding, never a failed run.
create or replace function raw.is_date_cell(v text) returns boolean
language sql stable parallel safe as $$
  select case when octet_length(v) in (10, 19) and (v like '____-__-__' or v like '____-__-__T__:__:__')
                   and pg_input_is_valid(v, 'timestamp')
              then left(to_char(v::timestamp, 'YYYY-MM-DD"T"HH24:MI:SS'), octet_length(v)) = v
              else false end
$$;

-- The moment a raw date cell names (null: blank, or not a date cell: see is_date_cell).
create or replace function raw.date_cell_timestamp(v text) returns timestamp
language sql stable parallel safe as $$
  select case when raw.is_date_cell(v) then v::timestamp end
$$;

create or replace function raw.norm_unit_code_slow(v text, period text) returns text
language plpgsql immutable parallel safe as $$
declare
  t text := raw.norm_text_slow(v);
  c text := raw.without_spaces(t);
begin
  if c is null then return null; end if;
  -- only a code-shaped cell is respaced: anything else ('Huyện Thanh Ba') is kept as it arrived (NFC, trimmed)
  if c ~ '^[A-Za-z][0-9]+(\.[0-9]+)*$' then return upper(c); end if;
  if c !~ '^[0-9]+$' then return t; end if;
  if length(c) <= 3 and (period is null or period !~ '^[0-9]{4}' or period < '2025-07') then
    return lpad(c, 3, '0');
  end if;
  if length(c) <= 5 then return lpad(c, 5, '0'); end if;
  return c;
end $$;

-- GSO codes get their leading zeros back: district 3 digits before 2025-07, commune 5 after;
-- a department's electronic id (H44.07) is kept, upper-cased. `period` is the row's
-- normalised period, year or date (compared as text: 'YYYY-MM...' sorts by time).
create or replace function raw.norm_unit_code(v text, period text) returns text
language sql immutable parallel safe as $$
  select case
    when char_length(v) = 5 and translate(v, '0123456789', '') = '' then v
    when char_length(v) = 3 and translate(v, '0123456789', '') = '' and period < '2025-07' and period ~ '^[0-9]{4}'
      then v
    when v ~ '^[A-Z][0-9]+(\.[0-9]+)*$' then v
    else raw.norm_unit_code_slow(v, period)
  end
$$;

create or replace function raw.norm_boolean_slow(v text) returns text
language plpgsql immutable parallel safe as $$
declare
  t text := raw.norm_text_slow(v);
begin
  if lower(t) in ('1', 'true', 'yes', 'y', 'x', 'có', 'co', 'đồng ý', 'dong y',
                  'hài lòng', 'hai long', 'rất hài lòng', 'rat hai long') then return 'true'; end if;
  if lower(t) in ('0', 'false', 'no', 'n', 'không', 'khong', 'không hài lòng',
                  'khong hai long', 'chưa hài lòng', 'chua hai long') then return 'false'; end if;
  return t;
end $$;

create or replace function raw.norm_boolean(v text) returns text
language sql immutable parallel safe as $$
  select case when v in ('true', 'false') then v else raw.norm_boolean_slow(v) end
$$;

-- Reading a cell for the marts: each function below is the one definition that validation
-- (validation/rules.py) and staging (dbt) share, so that what a rule accepts reaches the marts with
-- the meaning it was accepted with (raw keeps the cell as it arrived).

-- A name folded for comparison: NFC or not, trimmed, Vietnamese accents and đ removed (the combining marks of
-- its decomposed form: grave, acute, tilde, hook, dot below, breve, circumflex, horn), lower case, runs of
-- spaces one space ('Bưu  chính CÔNG ÍCH' -> 'buu chinh cong ich'). Decomposing and dropping eight marks
-- costs a fifth of translating the 134 accented letters.
create or replace function raw.fold_name(v text) returns text
language sql immutable parallel safe as $$
  select regexp_replace(lower(translate(normalize(btrim(v, E' \t\r\n\u00a0\u202f\u2009'), NFD),
                                        E'\u0111\u0110\u0300\u0301\u0303\u0309\u0323\u0306\u0302\u031b', 'dD')),
                        E'[\\s\u00a0\u202f\u2009]+', ' ', 'g')
$$;

-- The channel names of SPEC §3, folded (raw.fold_name), and the channel each means: English, or Vietnamese
-- in any case, with or without accents ('Trực tuyến', 'Trực tiếp', 'Bưu chính công ích', 'BCCI').
create or replace function raw.channel_names() returns table (name text, channel text)
language sql immutable parallel safe as $$
  values ('online', 'online'), ('direct', 'direct'), ('postal', 'postal'),
         ('truc tuyen', 'online'), ('truc tiep', 'direct'),
         ('buu chinh cong ich', 'postal'), ('buu chinh', 'postal'), ('bcci', 'postal')
$$;

-- raw.channel_of_slow(v) is written from raw.channel_names as one CASE over the cell's fold: a plain SQL
-- expression the planner inlines, so a row costs the fold of its cell and no function call (a lookup in
-- the list cost three times as much per row).
do $do$
begin
  execute format(
    'create or replace function raw.channel_of_slow(v text) returns text language sql immutable parallel safe '
    'as %L', (select 'select case raw.fold_name(v) ' || string_agg(format('when %L then %L', name, channel), ' ')
                     || ' end' from raw.channel_names()));
end
$do$;

-- The channel a channel cell names: 'online', 'direct' or 'postal'; null when it names none (validation's
-- channel_unknown quarantines the row). The canonical English names pass with one comparison.
create or replace function raw.channel_of(v text) returns text
language sql immutable parallel safe as $$
  select case when v in ('online', 'direct', 'postal') then v else raw.channel_of_slow(v) end
$$;

-- The whole number a count cell holds, null when it holds none the marts can keep: at most 15
-- significant digits (a bigint with room for the marts' sums of counts). Validation quarantines a
-- whole number it cannot read (count_too_large), so every count a row passed validation with is read.
create or replace function raw.count_cell(v text) returns bigint
language sql immutable parallel safe as $$
  select case when btrim(v) ~ '^[+-]?0*[0-9]{1,15}$' then btrim(v)::bigint end
$$;
