with

months as (

    select generate_series(
        date '{{ var("period_start") }}', date '{{ var("period_end") }}', interval '1 month'
    )::date as month_start

),

final as (

    select
        (extract(year from month_start) * 100 + extract(month from month_start))::integer as period_key,
        to_char(month_start, 'YYYY-MM') as period,
        month_start,
        (month_start + interval '1 month' - interval '1 day')::date as month_end,
        extract(year from month_start)::integer as year,
        extract(quarter from month_start)::integer as quarter,
        extract(month from month_start)::integer as month,
        'Tháng ' || extract(month from month_start)::integer || '/' || extract(year from month_start)::integer
            as label_vi,
        trim(to_char(month_start, 'Month')) || ' ' || extract(year from month_start)::integer as label_en,
        month_start >= date '{{ var("reform_date") }}' as is_after_reform
    from months

)

select * from final
