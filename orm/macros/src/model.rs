//! `#[derive(Model)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields, LitStr};

/// What `#[model(...)]` on the struct says.
#[derive(Default)]
struct Table {
    name: Option<String>,
    cache_ttl_ms: Option<u64>,
    primary_only: bool,
    database: Option<String>,
}

/// What `#[model(...)]` on a field says.
#[derive(Default)]
struct Field {
    primary_key: bool,
    auto: bool,
    column: Option<String>,
    foreign_key: Option<syn::Path>,
}

pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "a Model cannot have generic parameters or lifetimes",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "Model can be derived for structs only",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(name, "a Model needs named fields"));
    };
    let table = table_attrs(input)?;
    let table_name = table.name.unwrap_or_else(|| snake_case(&name.to_string()));
    let quoted_table = table_name
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".");

    let mut idents = Vec::new();
    let mut types = Vec::new();
    let mut columns = Vec::new();
    let mut primary: Option<(usize, bool)> = None;
    let mut foreign = Vec::new();
    for (i, f) in fields.named.iter().enumerate() {
        let attrs = field_attrs(f)?;
        let ident = f
            .ident
            .clone()
            .ok_or_else(|| syn::Error::new_spanned(f, "unnamed field"))?;
        let plain = ident.to_string().trim_start_matches("r#").to_string();
        columns.push(attrs.column.unwrap_or(plain));
        if attrs.primary_key {
            if primary.is_some() {
                return Err(syn::Error::new_spanned(
                    f,
                    "a Model has one primary_key field",
                ));
            }
            primary = Some((i, attrs.auto));
        } else if attrs.auto {
            return Err(syn::Error::new_spanned(f, "`auto` goes with `primary_key`"));
        }
        if let Some(target) = attrs.foreign_key {
            foreign.push((i, target));
        }
        idents.push(ident);
        types.push(f.ty.clone());
    }
    let Some((pk, auto)) = primary else {
        return Err(syn::Error::new_spanned(
            name,
            "a Model needs one field marked #[model(primary_key)]",
        ));
    };

    let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let select = quoted.join(", ");
    let struct_name = name.to_string();
    let cache_ttl = match table.cache_ttl_ms {
        Some(ms) => {
            quote! { ::core::option::Option::Some(::core::time::Duration::from_millis(#ms)) }
        }
        None => quote! { ::core::option::Option::None },
    };
    let database = match &table.database {
        Some(db) => quote! { ::core::option::Option::Some(#db) },
        None => quote! { ::core::option::Option::None },
    };
    let primary_only = table.primary_only;
    let fk_meta = foreign.iter().map(|(i, target)| {
        quote! {
            ::pinion_orm::model::ForeignKeyMeta {
                column: #i,
                target: || <#target as ::pinion_orm::Model>::META,
            }
        }
    });
    let fk_impls = foreign.iter().map(|(i, target)| {
        quote! {
            impl ::pinion_orm::ForeignKey<#target> for #name {
                const COLUMN: usize = #i;
            }
        }
    });
    let pk_ident = &idents[pk];
    let pk_type = &types[pk];
    let key_is_unset = if auto {
        quote! { self.#pk_ident == <#pk_type as ::core::default::Default>::default() }
    } else {
        quote! { false }
    };
    let value_arms = idents.iter().enumerate().map(|(i, ident)| {
        quote! { #i => &self.#ident, }
    });
    let consts = idents.iter().zip(&types).zip(&columns).enumerate().map(
        |(i, ((ident, ty), column))| {
            let upper = format_ident!(
                "{}",
                ident.to_string().trim_start_matches("r#").to_uppercase()
            );
            let doc = format!("The `{column}` column.");
            quote! {
                #[doc = #doc]
                pub const #upper: ::pinion_orm::Column<#name, #ty> = ::pinion_orm::Column::new(#i);
            }
        },
    );
    let from_row = crate::from_row(input)?;
    let count = idents.len();
    Ok(quote! {
        #from_row

        impl ::pinion_orm::Model for #name {
            const META: &'static ::pinion_orm::ModelMeta = &::pinion_orm::ModelMeta {
                name: #struct_name,
                table: #table_name,
                quoted_table: #quoted_table,
                columns: &[#(#columns),*],
                quoted_columns: &[#(#quoted),*],
                select: #select,
                primary_key: #pk,
                auto_key: #auto,
                foreign_keys: &[#(#fk_meta),*],
                cache_ttl: #cache_ttl,
                primary_only: #primary_only,
                database: #database,
            };

            fn column_value(
                &self,
                index: usize,
            ) -> &(dyn ::pinion_orm::tokio_postgres::types::ToSql + ::core::marker::Sync) {
                // Indices come from this model's own columns (0..#count).
                match index {
                    #(#value_arms)*
                    _ => &self.#pk_ident,
                }
            }

            fn key_is_unset(&self) -> bool {
                #key_is_unset
            }

            fn set_key_from<R: ::pinion_orm::RowRef + ?Sized>(
                &mut self,
                row: &R,
                idx: usize,
            ) -> ::core::result::Result<(), ::pinion_orm::Error> {
                self.#pk_ident = row.get_column(idx)?;
                ::core::result::Result::Ok(())
            }
        }

        #[allow(dead_code, reason = "a column constant per field, used or not")]
        impl #name {
            #(#consts)*
        }

        #(#fk_impls)*

        const _: () = assert!(#count > 0);
    })
}

fn table_attrs(input: &DeriveInput) -> syn::Result<Table> {
    let mut t = Table::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("model")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                t.name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("cache_ttl") {
                let lit = meta.value()?.parse::<LitStr>()?;
                t.cache_ttl_ms = Some(parse_duration_ms(&lit.value()).ok_or_else(|| {
                    syn::Error::new_spanned(
                        &lit,
                        "a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"",
                    )
                })?);
            } else if meta.path.is_ident("primary_only") {
                t.primary_only = true;
            } else if meta.path.is_ident("database") {
                t.database = Some(meta.value()?.parse::<LitStr>()?.value());
            } else {
                return Err(meta.error(
                    "unknown model setting: expected table, cache_ttl, primary_only or database",
                ));
            }
            Ok(())
        })?;
    }
    Ok(t)
}

fn field_attrs(f: &syn::Field) -> syn::Result<Field> {
    let mut out = Field::default();
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("model")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("primary_key") {
                out.primary_key = true;
            } else if meta.path.is_ident("auto") {
                out.auto = true;
            } else if meta.path.is_ident("column") {
                out.column = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("foreign_key") {
                out.foreign_key = Some(meta.value()?.parse::<syn::Path>()?);
            } else {
                return Err(meta.error(
                    "unknown field setting: expected primary_key, auto, column or foreign_key",
                ));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// `"id"`, with any `"` doubled: an identifier PostgreSQL takes exactly as written.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `OrderLine` → `order_line`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `500ms`, `30s`, `5m`, `1h` in milliseconds.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor)
}
