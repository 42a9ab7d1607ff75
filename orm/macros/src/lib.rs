//! Derive macros for `pinion-orm`, used through its re-exports (`pinion_orm::FromRow`,
//! `pinion_orm::Model`).

mod model;

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields};

/// `#[derive(FromRow)]`: decodes a row into the struct, column `i` into field `i` (in the order
/// the fields are declared), from a `tokio_postgres::Row` or a `PipelineRow` alike.
///
/// Positional, so that decoding does no name lookup: select the columns in field order. A row
/// with another number of columns is refused with an error that names the struct.
#[proc_macro_derive(FromRow)]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match from_row(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// `#[derive(Model)]`: maps the struct to a table (and derives `FromRow` in field order).
///
/// On the struct, `#[model(...)]` takes `table = "name"` (default: the struct's name in
/// snake case), `cache_ttl = "30s"` (query-cache lifetime of reads of this table; `ms`, `s`,
/// `m`, `h`), `primary_only` (an UNLOGGED table: never read from a replica) and
/// `database = "name"` (a database configured under that name). On a field: `primary_key`
/// (exactly one field; add `auto` when the database assigns it, a serial or identity
/// column), `column = "name"` (default: the field's name) and `foreign_key = Model`.
///
/// Each field becomes a typed column constant in upper case: `World::RANDOM_NUMBER`.
#[proc_macro_derive(Model, attributes(model))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match model::derive(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn from_row(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "FromRow can be derived for structs only",
        ));
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let count = data.fields.len();
    let getters = (0..count).map(|i| quote! { row.get_column(#i)? });
    let body = match &data.fields {
        Fields::Named(fields) => {
            let names = fields.named.iter().map(|f| &f.ident);
            quote! { #name { #(#names: #getters),* } }
        }
        Fields::Unnamed(_) => quote! { #name ( #(#getters),* ) },
        Fields::Unit => quote! { #name },
    };
    Ok(quote! {
        impl #impl_generics ::pinion_orm::FromRow for #name #ty_generics #where_clause {
            const COLUMNS: usize = #count;

            fn from_row<R: ::pinion_orm::RowRef + ?Sized>(
                row: &R,
            ) -> ::core::result::Result<Self, ::pinion_orm::Error> {
                ::pinion_orm::row::expect_columns(
                    ::core::stringify!(#name),
                    row.column_count(),
                    #count,
                )?;
                ::core::result::Result::Ok(#body)
            }
        }
    })
}
