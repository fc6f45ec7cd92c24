-- The unit version that applies to a unit code in a given month: the version valid on the
-- first of the month, else (a code reported outside its validity, which validation
-- quarantines) the nearest version, so that facts never lose their unit.
with

versions as (

    select * from {{ ref('int_units__versions') }}

),

codes_months as (

    select distinct unit_code, period from {{ ref('int_dossier_stats__current') }}
    union
    select distinct unit_code, period from {{ ref('int_it_kpis__current') }}
    union
    select distinct unit_code, lpad(year::text, 4, '0') || '-12' from {{ ref('int_par_scores__latest') }}

),

ranked as (

    select
        codes_months.unit_code,
        codes_months.period,
        versions.unit_key,
        versions.province_code,
        versions.level,
        row_number() over (
            partition by codes_months.unit_code, codes_months.period
            order by
                (to_date(codes_months.period || '-01', 'YYYY-MM-DD') between versions.valid_from and versions.valid_to) desc,
                versions.valid_from desc
        ) as preference
    from codes_months
    inner join versions on versions.unit_code = codes_months.unit_code

),

final as (

    select unit_code, period, unit_key, province_code, level
    from ranked
    where preference = 1

)

select * from final
